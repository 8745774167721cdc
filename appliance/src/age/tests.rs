use super::*;

fn pair() -> (Identity, Recipient) {
    let identity = Identity::generate().expect("identity");
    let recipient = identity.recipient();
    (identity, recipient)
}

fn sealed(plain: &[u8], to: &[Recipient]) -> Vec<u8> {
    let mut out = Vec::new();
    encrypt(plain, &mut out, to).expect("encrypt");
    out
}

fn open(file: &[u8], with: &[Identity]) -> Result<Vec<u8>, AgeError> {
    let mut out = Vec::new();
    decrypt(file, &mut out, with).map(|_| out)
}

/// Where the MAC line starts, and where the payload (its nonce) starts.
fn header_bounds(file: &[u8]) -> (usize, usize) {
    let mac_line = file
        .windows(4)
        .position(|w| w == b"--- ")
        .expect("mac line");
    let payload = mac_line
        + file[mac_line..]
            .iter()
            .position(|b| *b == b'\n')
            .expect("nl")
        + 1;
    (mac_line, payload)
}

#[test]
fn round_trips_every_chunking_edge() {
    let (identity, recipient) = pair();
    for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
        let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let file = sealed(&plain, std::slice::from_ref(&recipient));
        assert!(file.starts_with(MAGIC));
        let chunks = size.div_ceil(CHUNK).max(1);
        let (_, body_start) = header_bounds(&file);
        assert_eq!(
            file.len() - body_start,
            16 + size + chunks * TAG,
            "size {size}"
        );
        assert_eq!(
            open(&file, std::slice::from_ref(&identity)).expect("open"),
            plain,
            "size {size}"
        );
    }
}

#[test]
fn opens_with_any_listed_identity_and_refuses_others() {
    let (a, ra) = pair();
    let (b, rb) = pair();
    let (c, _) = pair();
    let file = sealed(b"two recipients", &[ra, rb]);
    assert_eq!(open(&file, &[b]).expect("b opens"), b"two recipients");
    assert_eq!(open(&file, &[c, a]).expect("a opens"), b"two recipients");
    let (d, _) = pair();
    assert!(matches!(open(&file, &[d]), Err(AgeError::NoMatch)));
}

#[test]
fn damage_and_truncation_are_refused() {
    let (identity, recipient) = pair();
    let plain = vec![7u8; 2 * CHUNK + 5];
    let file = sealed(&plain, &[recipient]);
    let ids = [identity];
    // A payload byte flipped.
    let mut flipped = file.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 1;
    assert!(matches!(open(&flipped, &ids), Err(AgeError::Damaged(_))));
    // The header changed (its MAC no longer matches): a stanza added.
    let (header_end, body_start) = header_bounds(&file);
    let mut extended = file[..header_end].to_vec();
    extended.extend_from_slice(b"-> other stanza\n\n");
    extended.extend_from_slice(&file[header_end..]);
    assert!(matches!(open(&extended, &ids), Err(AgeError::Damaged(_))));
    // Cut at a chunk boundary: the chunk before was not the last.
    let cut = &file[..body_start + 16 + CHUNK + TAG];
    assert!(matches!(open(cut, &ids), Err(AgeError::Damaged(_))));
    // Two chunks swapped: each is bound to its position.
    let first = body_start + 16;
    let mut swapped = file[..first].to_vec();
    swapped.extend_from_slice(&file[first + CHUNK + TAG..first + 2 * (CHUNK + TAG)]);
    swapped.extend_from_slice(&file[first..first + CHUNK + TAG]);
    swapped.extend_from_slice(&file[first + 2 * (CHUNK + TAG)..]);
    assert_eq!(swapped.len(), file.len());
    assert!(matches!(open(&swapped, &ids), Err(AgeError::Damaged(_))));
    // Cut in the middle, and cut in the header.
    assert!(open(&file[..file.len() - 3], &ids).is_err());
    assert!(matches!(
        open(&file[..body_start - 5], &ids),
        Err(AgeError::Truncated)
    ));
    // Data after the last chunk.
    let mut trailing = file.clone();
    trailing.extend_from_slice(&[0u8; 40]);
    assert!(open(&trailing, &ids).is_err());
    // Not age at all.
    assert!(matches!(
        open(b"PGDMP\x01\x0e", &ids),
        Err(AgeError::NotAge(_))
    ));
    assert!(matches!(open(b"", &ids), Err(AgeError::NotAge(_))));
    // A hostile header that never ends.
    let mut endless = MAGIC.to_vec();
    endless.extend(std::iter::repeat_n(b'x', MAX_HEADER + 10));
    assert!(matches!(open(&endless, &ids), Err(AgeError::NotAge(_))));
}

#[test]
fn key_files_are_read_as_age_keygen_writes_them() {
    let identity = Identity::generate().expect("identity");
    let secret = identity.to_secret_string();
    let public = identity.recipient().to_string();
    assert!(secret.starts_with("AGE-SECRET-KEY-1"), "{}", &secret[..16]);
    assert!(public.starts_with("age1") && public.len() == 62, "{public}");
    let keygen = format!(
        "# created: 2026-12-07T12:00:00Z\n# public key: {public}\n{}\n",
        secret.as_str()
    );
    let ids = identities_from(&keygen).expect("identities");
    assert_eq!(ids[0].recipient(), identity.recipient());
    let recipients = recipients_from(&format!("# ops team\n\n{public}\n")).expect("recipients");
    assert_eq!(recipients, vec![identity.recipient()]);

    assert!(matches!(
        recipients_from("# nothing\n"),
        Err(AgeError::NoRecipients)
    ));
    assert!(matches!(identities_from(""), Err(AgeError::NoIdentities)));
    let e = recipients_from(&format!("{public}\nssh-ed25519 AAAA… ops\n")).expect_err("ssh");
    assert!(
        e.to_string().contains("line 2") && e.to_string().contains("SSH"),
        "{e}"
    );
    let e = recipients_from(secret.as_str()).expect_err("a private key");
    assert!(e.to_string().contains("age-keygen -y"), "{e}");
    let e = identities_from(&public).expect_err("a public key");
    assert!(e.to_string().contains("line 1"), "{e}");
}
