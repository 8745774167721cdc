#!/usr/bin/env bash
# Prints the commands of a document's code blocks tagged for one place,
# e.g. the ```` ```sh offline-host ```` blocks of docs/install.md, in the
# order they appear, so that tests run exactly what the document says.
# Fails when the document has no such block.
#
# usage: doc-commands.sh DOC.md TAG
set -euo pipefail
doc=$1
tag=$2
awk -v fence="\`\`\`sh $tag" '
  $0 == fence { inside = 1; found = 1; next }
  inside && /^```/ { inside = 0; next }
  inside { print }
  END { if (!found) exit 3 }
' "$doc" || { echo "$doc has no \`\`\`sh $tag block" >&2; exit 1; }
