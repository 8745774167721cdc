//! Bech32 (BIP 173), as age encodes its keys: `age1…` recipients and
//! `AGE-SECRET-KEY-1…` identities. No length limit (age's keys exceed 90).

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR: [u32; 5] = [
    0x3b6a_57b2,
    0x2650_8e6d,
    0x1ea1_19fa,
    0x3d42_33dd,
    0x2a14_62b3,
];

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &[u8]) -> impl Iterator<Item = u8> + '_ {
    hrp.iter()
        .map(|c| c >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.iter().map(|c| c & 31))
}

/// Regroups bits: 8 → 5 (`pad`) or 5 → 8 (no padding allowed).
fn convert(data: &[u8], from: u32, to: u32, pad: bool) -> Option<Vec<u8>> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    let max = (1u32 << to) - 1;
    for &value in data {
        acc = (acc << from) | u32::from(value);
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & max) as u8);
        }
    }
    if pad {
        if bits > 0 {
            out.push(((acc << (to - bits)) & max) as u8);
        }
    } else if bits >= from || ((acc << (to - bits)) & max) != 0 {
        return None;
    }
    Some(out)
}

/// `hrp` (lower case) and `data` as a lower-case Bech32 string.
pub fn encode(hrp: &str, data: &[u8]) -> String {
    let values = convert(data, 8, 5, true).unwrap_or_default();
    let hrp_bytes = hrp.as_bytes();
    let check = polymod(
        hrp_expand(hrp_bytes)
            .chain(values.iter().copied())
            .chain([0u8; 6]),
    ) ^ 1;
    let mut out = String::with_capacity(hrp.len() + 1 + values.len() + 6);
    out.push_str(hrp);
    out.push('1');
    for v in &values {
        out.push(CHARSET[usize::from(*v)] as char);
    }
    for i in 0..6 {
        out.push(CHARSET[((check >> (5 * (5 - i))) & 31) as usize] as char);
    }
    out
}

/// The human-readable part (lower case) and the data of a Bech32 string,
/// all upper or all lower case; `None` when it is not one.
pub fn decode(text: &str) -> Option<(String, Vec<u8>)> {
    let has_lower = text.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = text.bytes().any(|b| b.is_ascii_uppercase());
    if (has_lower && has_upper) || !text.is_ascii() {
        return None;
    }
    let text = text.to_ascii_lowercase();
    let split = text.rfind('1')?;
    let (hrp, rest) = (&text[..split], &text[split + 1..]);
    if hrp.is_empty() || rest.len() < 6 || hrp.bytes().any(|b| !(33..=126).contains(&b)) {
        return None;
    }
    let values: Vec<u8> = rest
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8))
        .collect::<Option<_>>()?;
    if polymod(hrp_expand(hrp.as_bytes()).chain(values.iter().copied())) != 1 {
        return None;
    }
    let data = convert(&values[..values.len() - 6], 5, 8, false)?;
    Some((hrp.to_string(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_a_changed_character() {
        let data: Vec<u8> = (0u8..32).collect();
        let text = encode("age", &data);
        assert!(text.starts_with("age1"));
        assert_eq!(decode(&text), Some(("age".to_string(), data.clone())));
        assert_eq!(
            decode(&text.to_ascii_uppercase()),
            Some(("age".to_string(), data))
        );
        let mut broken = text.into_bytes();
        let last = broken.len() - 1;
        broken[last] = if broken[last] == b'q' { b'p' } else { b'q' };
        assert_eq!(decode(&String::from_utf8(broken).expect("ascii")), None);
        assert_eq!(decode("Age1qqqq"), None, "mixed case");
    }

    #[test]
    fn decodes_the_bip173_examples() {
        for valid in [
            "A12UEL5L",
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
            "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
        ] {
            assert!(decode(valid).is_some(), "{valid}");
        }
        for invalid in [
            "pzry9x0s0muk",
            "1pzry9x0s0muk",
            "x1b4n0q5v",
            "li1dgmt3",
            "A1G7SGD8",
        ] {
            assert!(decode(invalid).is_none(), "{invalid}");
        }
    }
}
