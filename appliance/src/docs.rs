//! The documentation compiled into the binary: every Markdown file of
//! `docs/` when it was built, rendered to HTML for `/docs/` so that a site
//! without internet access reads the runbooks its alerts link to from the
//! appliance itself. One doc set: the packages ship the same files.

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/docs.rs"));
}

/// Every page: (path below `docs/`, e.g. `runbooks/alerts.md`; Markdown).
pub fn pages() -> &'static [(&'static str, &'static str)] {
    embedded::PAGES
}

/// The Markdown of one page.
pub fn page(path: &str) -> Option<&'static str> {
    pages()
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, text)| *text)
}

/// A page's title: its first `# ` heading, code spans as plain text
/// (without rendering the page).
pub fn title(markdown: &str) -> String {
    markdown
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim().replace('`', ""))
        .unwrap_or_default()
}

/// A page rendered: its title (the first heading), the HTML of its body,
/// and the ids of its headings (the anchors links may point at).
pub struct Rendered {
    pub title: String,
    pub html: String,
    pub anchors: Vec<String>,
}

/// A heading's anchor as GitHub makes it, so links written for the
/// repository work here too: lower case, characters other than letters,
/// digits, `-` and `_` dropped, spaces as `-`.
pub fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Renders Markdown (tables included). Raw HTML in the source is shown as
/// text, never passed through: pages are served under the strict CSP and
/// must not depend on markup the renderer does not produce.
pub fn render(markdown: &str) -> Rendered {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut anchors: Vec<String> = Vec::new();
    let mut events: Vec<Event<'_>> = Vec::new();
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => match explicit_anchor(&raw) {
                Some(Some(id)) => {
                    events.push(Event::InlineHtml(CowStr::from(format!(
                        "<a id=\"{id}\"></a>"
                    ))));
                    anchors.push(id);
                }
                Some(None) => {}
                None => events.push(Event::Text(raw)),
            },
            other => events.push(other),
        }
    }
    let mut title = None;
    let mut i = 0;
    while i < events.len() {
        if let Event::Start(Tag::Heading { level, .. }) = &events[i] {
            let level = *level;
            let mut text = String::new();
            for event in &events[i + 1..] {
                match event {
                    Event::End(TagEnd::Heading(_)) => break,
                    Event::Text(t) | Event::Code(t) => text.push_str(t),
                    _ => {}
                }
            }
            let base = slug(&text);
            let mut id = base.clone();
            let mut n = 0;
            while anchors.contains(&id) {
                n += 1;
                id = format!("{base}-{n}");
            }
            if level == HeadingLevel::H1 && title.is_none() {
                title = Some(text);
            }
            anchors.push(id.clone());
            if let Event::Start(Tag::Heading { id: slot, .. }) = &mut events[i] {
                *slot = Some(CowStr::from(id));
            }
        }
        i += 1;
    }
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    Rendered {
        title: title.unwrap_or_default(),
        html,
        anchors,
    }
}

/// The one piece of HTML the docs may use: an explicit anchor,
/// `<a id="name"></a>` (`Some(Some(id))`), or the `</a>` closing one
/// written on its own (`Some(None)`); anything else is `None`.
fn explicit_anchor(raw: &str) -> Option<Option<String>> {
    let raw = raw.trim();
    if raw == "</a>" {
        return Some(None);
    }
    let rest = raw.strip_prefix("<a id=\"")?;
    let (id, tail) = rest.split_once('"')?;
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (valid && (tail == ">" || tail == "></a>")).then(|| Some(id.to_string()))
}

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_the_ones_github_makes() {
        assert_eq!(slug("Health endpoints"), "health-endpoints");
        assert_eq!(
            slug("Two-factor authentication (TOTP)"),
            "two-factor-authentication-totp"
        );
        assert_eq!(slug("`[metrics]`"), "metrics");
        assert_eq!(slug("Backups: what is kept"), "backups-what-is-kept");
        let r = render("# Title\n\n## Same\n\n## Same\n\n### `code` and *em*\n");
        assert_eq!(r.title, "Title");
        assert_eq!(r.anchors, ["title", "same", "same-1", "code-and-em"]);
        assert!(r.html.contains("<h2 id=\"same-1\">"), "{}", r.html);
    }

    #[test]
    fn raw_html_is_shown_not_obeyed() {
        let r = render("Hello <script>alert(1)</script>\n\n<div onclick=\"x\">hi</div>\n");
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(!r.html.contains("<div"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;"), "{}", r.html);
        // Explicit anchors are the exception, with a plain id only.
        let r = render(
            "<a id=\"routes\"></a>\n\nText <a id=\"x-1\"></a> and <a id=\"a\" onclick=\"y\"></a>\n",
        );
        assert_eq!(r.anchors, ["routes", "x-1"]);
        assert!(r.html.contains("<a id=\"routes\"></a>"), "{}", r.html);
        assert!(r.html.contains("&lt;a id=\"a\" onclick"), "{}", r.html);
    }

    #[test]
    fn every_page_renders_and_its_links_to_other_pages_resolve() {
        assert!(page("operations.md").is_some());
        assert!(page("observability.md").is_some());
        let mut broken = Vec::new();
        for (name, text) in pages() {
            let rendered = render(text);
            assert!(!rendered.title.is_empty(), "{name} has no title");
            assert_eq!(title(text), rendered.title, "{name}: the index's title");
            // Links between pages (relative, to a .md file, maybe with an anchor).
            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
            for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
                let Event::Start(Tag::Link { dest_url, .. }) = event else {
                    continue;
                };
                let url = dest_url.to_string();
                if url.contains("://") || url.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = url.split_once('#').unwrap_or((url.as_str(), ""));
                let target = if file.is_empty() {
                    name.to_string()
                } else {
                    match normalize(dir, file) {
                        Some(t) => t,
                        None => continue, // outside docs/ (the repository's README, the chart)
                    }
                };
                if !target.ends_with(".md") {
                    continue;
                }
                match page(&target) {
                    None => broken.push(format!("{name}: {url} (no page {target})")),
                    Some(other) if !anchor.is_empty() => {
                        if !render(other).anchors.iter().any(|a| a == anchor) {
                            broken
                                .push(format!("{name}: {url} (no heading #{anchor} in {target})"));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    }

    /// `file` relative to directory `dir` of docs/, or `None` when it
    /// leaves docs/.
    fn normalize(dir: &str, file: &str) -> Option<String> {
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for part in file.split('/') {
            match part {
                "." | "" => {}
                ".." => {
                    parts.pop()?;
                }
                p => parts.push(p),
            }
        }
        Some(parts.join("/"))
    }
}
