//! The age file format (<https://age-encryption.org/v1>) with X25519
//! recipients, for encrypted backups (ADR 0022): archives written here are
//! opened by Debian's `age -d -i KEY`, and files `age -r age1…` wrote are
//! opened here. Keys are age's own text forms: recipients `age1…`,
//! identities `AGE-SECRET-KEY-1…`. Streaming, in 64 KiB chunks
//! (ChaCha20-Poly1305 STREAM); HKDF, HMAC and the AEAD are ring's, X25519 is
//! curve25519-dalek's. Passphrase (scrypt), SSH and plugin recipients are
//! not supported.

mod bech32;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

/// The first line of every age file.
pub const MAGIC: &[u8] = b"age-encryption.org/v1\n";
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
/// A header longer than this is refused (hostile input): a real one with a
/// few recipients is a few hundred bytes.
const MAX_HEADER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AgeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {reason}")]
    BadKey { line: usize, reason: String },
    #[error("it holds no recipient (a line `age1…`); create a key with `age-keygen` and list its public key")]
    NoRecipients,
    #[error("it holds no identity (a line `AGE-SECRET-KEY-1…`, as `age-keygen` writes it)")]
    NoIdentities,
    #[error("not an age-encrypted file ({0})")]
    NotAge(String),
    #[error("none of the given identities can open it: it was encrypted for other keys")]
    NoMatch,
    #[error("it is damaged or was altered ({0}); nothing of it can be trusted")]
    Damaged(&'static str),
    #[error("it ends early: the file was cut short")]
    Truncated,
    #[error("the system's random number generator failed")]
    Random,
}

/// A public key files are encrypted to (`age1…`).
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient([u8; 32]);

/// A private key files are opened with (`AGE-SECRET-KEY-1…`).
#[derive(Clone)]
pub struct Identity(Zeroizing<[u8; 32]>);

/// Shows the public key only: the private key is never printed.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity(for {})", self.recipient())
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&bech32::encode("age", &self.0))
    }
}

impl Recipient {
    pub fn parse(text: &str) -> Option<Recipient> {
        let (hrp, data) = bech32::decode(text)?;
        (hrp == "age" && text.starts_with("age1"))
            .then(|| data.try_into().ok().map(Recipient))
            .flatten()
    }
}

impl Identity {
    pub fn parse(text: &str) -> Option<Identity> {
        let (hrp, data) = bech32::decode(text)?;
        if hrp != "age-secret-key-" || !text.starts_with("AGE-SECRET-KEY-1") {
            return None;
        }
        let bytes: [u8; 32] = data.try_into().ok()?;
        Some(Identity(Zeroizing::new(bytes)))
    }

    /// A new random identity.
    pub fn generate() -> Result<Identity, AgeError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut bytes[..])
            .map_err(|_| AgeError::Random)?;
        Ok(Identity(bytes))
    }

    pub fn recipient(&self) -> Recipient {
        Recipient(MontgomeryPoint::mul_base_clamped(*self.0).to_bytes())
    }

    /// The identity as `age-keygen` writes it.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        Zeroizing::new(bech32::encode("age-secret-key-", &self.0[..]).to_ascii_uppercase())
    }
}

/// The meaningful lines of a key file: not blank, not a `#` comment.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// The recipients of a recipients file (one `age1…` per line, `#`
/// comments), at least one.
pub fn recipients_from(text: &str) -> Result<Vec<Recipient>, AgeError> {
    let mut out = Vec::new();
    for (line, key) in key_lines(text) {
        let recipient = Recipient::parse(key).ok_or_else(|| AgeError::BadKey {
            line,
            reason: if key.starts_with("ssh-") {
                "SSH keys are not supported: use an age X25519 key (`age-keygen`)".to_string()
            } else if key.starts_with("AGE-SECRET-KEY-") {
                "that is a private key: list its public key (`age-keygen -y KEYFILE`)".to_string()
            } else {
                "not an age recipient (`age1…`)".to_string()
            },
        })?;
        out.push(recipient);
    }
    if out.is_empty() {
        return Err(AgeError::NoRecipients);
    }
    Ok(out)
}

/// The identities of an identity file (`age-keygen`'s output), at least one.
pub fn identities_from(text: &str) -> Result<Vec<Identity>, AgeError> {
    let mut out = Vec::new();
    for (line, key) in key_lines(text) {
        out.push(Identity::parse(key).ok_or_else(|| AgeError::BadKey {
            line,
            reason: "not an age identity (`AGE-SECRET-KEY-1…`)".to_string(),
        })?);
    }
    if out.is_empty() {
        return Err(AgeError::NoIdentities);
    }
    Ok(out)
}

/// Encrypts the file `input` into a new file `output` (created 0600, never
/// over an existing one); removed again when anything fails.
pub fn encrypt_file(
    input: &Path,
    output: &Path,
    recipients: &[Recipient],
) -> Result<u64, AgeError> {
    let from = std::fs::File::open(input)?;
    with_new_file(output, |to| encrypt(from, to, recipients))
}

/// Decrypts the file `input` into a new file `output` (created 0600);
/// removed again when anything fails, so no partial plaintext stays.
pub fn decrypt_file(input: &Path, output: &Path, identities: &[Identity]) -> Result<u64, AgeError> {
    let from = std::fs::File::open(input)?;
    with_new_file(output, |to| decrypt(from, to, identities))
}

fn with_new_file(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> Result<u64, AgeError>,
) -> Result<u64, AgeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = (|| {
        let mut out = std::io::BufWriter::with_capacity(CHUNK + TAG, &file);
        let n = write(&mut out)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        Ok(n)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// The recipients of a recipients file ([`recipients_from`]).
pub fn recipients_file(path: &Path) -> Result<Vec<Recipient>, AgeError> {
    recipients_from(&std::fs::read_to_string(path)?)
}

/// The identities of an identity file ([`identities_from`]).
pub fn identity_file(path: &Path) -> Result<Vec<Identity>, AgeError> {
    identities_from(&Zeroizing::new(std::fs::read_to_string(path)?))
}

/// Whether the file begins as an age file does.
pub fn is_age_file(path: &Path) -> std::io::Result<bool> {
    let mut start = [0u8; MAGIC.len()];
    let mut file = std::fs::File::open(path)?;
    let mut read = 0;
    while read < start.len() {
        match file.read(&mut start[read..])? {
            0 => return Ok(false),
            n => read += n,
        }
    }
    Ok(start == MAGIC)
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // Fails only for an output over 255 × 32 bytes: never for 32.
    if let Ok(okm) = hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len(32))
    {
        let _ = okm.fill(&mut out[..]);
    }
    out
}

fn aead(key: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always the right length for ChaCha20-Poly1305.
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key"))
}

fn header_mac_key(file_key: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &hkdf32(file_key, b"", b"header")[..])
}

fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Reads until `buf` is full or the input ends; how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Base64 without padding, wrapped at 64 columns; the last line is always
/// shorter than 64 (empty when the text fills its lines).
fn wrapped(bytes: &[u8]) -> String {
    let text = STANDARD_NO_PAD.encode(bytes);
    let mut out = String::new();
    let mut rest = text.as_str();
    loop {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        if line.len() < 64 {
            return out;
        }
        rest = tail;
    }
}

/// Encrypts everything `reader` gives to `recipients` into `writer`;
/// returns the plaintext's length.
pub fn encrypt(
    mut reader: impl Read,
    mut writer: impl Write,
    recipients: &[Recipient],
) -> Result<u64, AgeError> {
    if recipients.is_empty() {
        return Err(AgeError::NoRecipients);
    }
    let random = SystemRandom::new();
    let fill = |buf: &mut [u8]| random.fill(buf).map_err(|_| AgeError::Random);
    let mut file_key = Zeroizing::new([0u8; 16]);
    fill(&mut file_key[..])?;
    let mut header = Vec::from(MAGIC);
    for recipient in recipients {
        let mut ephemeral = Zeroizing::new([0u8; 32]);
        fill(&mut ephemeral[..])?;
        let share = MontgomeryPoint::mul_base_clamped(*ephemeral).to_bytes();
        let shared = Zeroizing::new(
            MontgomeryPoint(recipient.0)
                .mul_clamped(*ephemeral)
                .to_bytes(),
        );
        if shared.iter().all(|b| *b == 0) {
            return Err(AgeError::BadKey {
                line: 0,
                reason: format!("{recipient} is not a usable X25519 key"),
            });
        }
        let mut salt = Vec::with_capacity(64);
        salt.extend_from_slice(&share);
        salt.extend_from_slice(&recipient.0);
        let wrap_key = hkdf32(&shared[..], &salt, X25519_INFO);
        let mut body = file_key.to_vec();
        aead(&wrap_key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut body,
            )
            .map_err(|_| AgeError::Random)?;
        header
            .extend_from_slice(format!("-> X25519 {}\n", STANDARD_NO_PAD.encode(share)).as_bytes());
        header.extend_from_slice(wrapped(&body).as_bytes());
    }
    header.extend_from_slice(b"---");
    let mac = hmac::sign(&header_mac_key(&file_key[..]), &header);
    header.extend_from_slice(format!(" {}\n", STANDARD_NO_PAD.encode(mac.as_ref())).as_bytes());
    writer.write_all(&header)?;

    let mut nonce = [0u8; 16];
    fill(&mut nonce)?;
    writer.write_all(&nonce)?;
    let key = aead(&hkdf32(&file_key[..], &nonce, b"payload"));
    let mut current = vec![0u8; CHUNK];
    let mut next = vec![0u8; CHUNK];
    let mut len = read_full(&mut reader, &mut current)?;
    let mut counter = 0u64;
    let mut total = 0u64;
    loop {
        let next_len = if len == CHUNK {
            read_full(&mut reader, &mut next)?
        } else {
            0
        };
        let last = next_len == 0;
        let mut chunk = current[..len].to_vec();
        key.seal_in_place_append_tag(chunk_nonce(counter, last), Aad::empty(), &mut chunk)
            .map_err(|_| AgeError::Random)?;
        writer.write_all(&chunk)?;
        total += len as u64;
        if last {
            break;
        }
        counter += 1;
        std::mem::swap(&mut current, &mut next);
        len = next_len;
    }
    writer.flush()?;
    Ok(total)
}

/// Reads one header line (without its `\n`) into `raw` too.
fn header_line(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> Result<String, AgeError> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take((MAX_HEADER.saturating_sub(raw.len()) + 1) as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(AgeError::Truncated);
    }
    if line.last() != Some(&b'\n') {
        return Err(if raw.len() + line.len() > MAX_HEADER {
            AgeError::NotAge("its header is too long".to_string())
        } else {
            AgeError::Truncated
        });
    }
    raw.extend_from_slice(&line);
    line.pop();
    String::from_utf8(line).map_err(|_| AgeError::NotAge("its header is not text".to_string()))
}

/// Opens an age file from `reader` into `writer` with the first identity
/// that fits; returns the plaintext's length. On an error the writer may
/// hold part of the plaintext: callers write to a file they remove then.
pub fn decrypt(
    reader: impl Read,
    mut writer: impl Write,
    identities: &[Identity],
) -> Result<u64, AgeError> {
    let mut reader = BufReader::with_capacity(CHUNK + TAG, reader);
    let mut raw = Vec::new();
    let first = header_line(&mut reader, &mut raw).map_err(|e| match e {
        AgeError::Truncated => AgeError::NotAge("it is empty".to_string()),
        other => other,
    })?;
    if first.as_bytes() != &MAGIC[..MAGIC.len() - 1] {
        return Err(AgeError::NotAge(
            "it does not begin with age-encryption.org/v1".to_string(),
        ));
    }
    let mut file_key: Option<Zeroizing<Vec<u8>>> = None;
    let mut line = header_line(&mut reader, &mut raw)?;
    let mac_b64 = loop {
        if let Some(mac) = line.strip_prefix("--- ") {
            break mac.to_string();
        }
        let args = line.strip_prefix("-> ").ok_or(AgeError::Damaged(
            "a header line is neither a stanza nor the MAC",
        ))?;
        let args: Vec<&str> = args.split(' ').collect();
        let mut body = Vec::new();
        loop {
            let l = header_line(&mut reader, &mut raw)?;
            let done = l.len() < 64;
            body.extend(
                STANDARD_NO_PAD
                    .decode(l.as_bytes())
                    .map_err(|_| AgeError::Damaged("a stanza's body is not base64"))?,
            );
            if done {
                break;
            }
        }
        if file_key.is_none() && args.len() == 2 && args[0] == "X25519" {
            let share: [u8; 32] = STANDARD_NO_PAD
                .decode(args[1].as_bytes())
                .ok()
                .and_then(|s| s.try_into().ok())
                .ok_or(AgeError::Damaged("an X25519 stanza's share is malformed"))?;
            if body.len() != 32 {
                return Err(AgeError::Damaged(
                    "an X25519 stanza's body has the wrong length",
                ));
            }
            for identity in identities {
                let shared =
                    Zeroizing::new(MontgomeryPoint(share).mul_clamped(*identity.0).to_bytes());
                if shared.iter().all(|b| *b == 0) {
                    continue;
                }
                let mut salt = Vec::with_capacity(64);
                salt.extend_from_slice(&share);
                salt.extend_from_slice(&identity.recipient().0);
                let wrap_key = hkdf32(&shared[..], &salt, X25519_INFO);
                let mut opened = Zeroizing::new(body.clone());
                if let Ok(key) = aead(&wrap_key).open_in_place(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    &mut opened[..],
                ) {
                    if key.len() == 16 {
                        file_key = Some(Zeroizing::new(key.to_vec()));
                        break;
                    }
                }
            }
        }
        line = header_line(&mut reader, &mut raw)?;
    };
    let file_key = file_key.ok_or(AgeError::NoMatch)?;
    // The MAC covers the header up to and including "---".
    let covered = raw.len() - (mac_b64.len() + 2);
    let mac = STANDARD_NO_PAD
        .decode(mac_b64.as_bytes())
        .map_err(|_| AgeError::Damaged("the header's MAC is not base64"))?;
    hmac::verify(&header_mac_key(&file_key), &raw[..covered], &mac)
        .map_err(|_| AgeError::Damaged("the header's MAC does not match"))?;

    let mut nonce = [0u8; 16];
    if read_full(&mut reader, &mut nonce)? < nonce.len() {
        return Err(AgeError::Truncated);
    }
    let key = aead(&hkdf32(&file_key, &nonce, b"payload"));
    let mut current = vec![0u8; CHUNK + TAG];
    let mut next = vec![0u8; CHUNK + TAG];
    let mut len = read_full(&mut reader, &mut current)?;
    let (mut counter, mut total) = (0u64, 0u64);
    loop {
        if len < TAG {
            return Err(AgeError::Truncated);
        }
        let next_len = if len == CHUNK + TAG {
            read_full(&mut reader, &mut next)?
        } else {
            0
        };
        let last = next_len == 0;
        if last && len == TAG && counter > 0 {
            return Err(AgeError::Damaged("the last chunk is empty"));
        }
        let plain = key
            .open_in_place(
                chunk_nonce(counter, last),
                Aad::empty(),
                &mut current[..len],
            )
            .map_err(|_| {
                if last {
                    AgeError::Damaged("a chunk does not authenticate, or the file was cut short")
                } else {
                    AgeError::Damaged("a chunk does not authenticate")
                }
            })?;
        writer.write_all(plain)?;
        total += plain.len() as u64;
        if last {
            break;
        }
        counter = counter
            .checked_add(1)
            .ok_or(AgeError::Damaged("too many chunks"))?;
        std::mem::swap(&mut current, &mut next);
        len = next_len;
    }
    writer.flush()?;
    Ok(total)
}

#[cfg(test)]
mod tests;
