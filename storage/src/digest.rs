//! `Digest`: the identity of a blob, `sha256:<64 lowercase hex>`, and the checksums computed beside it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A sha256 content digest. Only well-formed values exist, so a digest is always safe to turn into a path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex characters, without the algorithm prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The sha256 of a small in-memory value (documents, manifests).
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(bytes).into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest `{0}`: expected sha256:<64 lowercase hex characters>")]
pub struct InvalidDigest(pub String);

impl FromStr for Digest {
    type Err = InvalidDigest;

    /// Accepts `sha256:<hex>`; the bare hex form is accepted too, as index keys and file names store it.
    fn from_str(s: &str) -> Result<Self, InvalidDigest> {
        let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
        let valid = hex_part.len() == 64
            && hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut bytes = [0u8; 32];
        if !valid || hex::decode_to_slice(hex_part, &mut bytes).is_err() {
            return Err(InvalidDigest(s.chars().take(100).collect()));
        }
        Ok(Digest(bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Which extra checksums an ingest computes besides sha256 (Maven serves sha1, md5 and sha512 files; npm checks
/// sha1 and sha512). Each costs a pass of CPU, so a format asks only for what it serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub sha1: bool,
    pub md5: bool,
    pub sha512: bool,
}

impl Want {
    pub const NONE: Want = Want {
        sha1: false,
        md5: false,
        sha512: false,
    };
    pub const ALL: Want = Want {
        sha1: true,
        md5: true,
        sha512: true,
    };

    /// One bit each, as the queue of later checksums stores them.
    pub fn bits(self) -> u8 {
        self.sha1 as u8 | (self.md5 as u8) << 1 | (self.sha512 as u8) << 2
    }

    pub fn from_bits(bits: u8) -> Want {
        Want {
            sha1: bits & 1 != 0,
            md5: bits & 2 != 0,
            sha512: bits & 4 != 0,
        }
    }

    /// What of `self` `have` lacks.
    pub fn missing_from(self, have: &Checksums) -> Want {
        Want {
            sha1: self.sha1 && have.sha1.is_none(),
            md5: self.md5 && have.md5.is_none(),
            sha512: self.sha512 && have.sha512.is_none(),
        }
    }
}

/// Extra checksums of a blob, lowercase hex.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
}

impl Checksums {
    /// Keeps what either side knows; used when a blob is ingested again with other checksums asked for.
    pub fn merge(&mut self, other: &Checksums) {
        self.sha1 = self.sha1.take().or_else(|| other.sha1.clone());
        self.md5 = self.md5.take().or_else(|| other.md5.clone());
        self.sha512 = self.sha512.take().or_else(|| other.sha512.clone());
    }
}

/// The sha256 and the extra checksums of a stream, computed in one pass.
#[derive(Clone)]
pub struct Hasher {
    sha256: sha2::Sha256,
    extra: Extra,
}

impl Hasher {
    pub fn new(want: Want) -> Self {
        use sha2::Digest as _;
        Hasher {
            sha256: sha2::Sha256::new(),
            extra: Extra::new(want),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        self.sha256.update(bytes);
        self.extra.update(bytes);
    }

    pub fn finish(self) -> (Digest, Checksums) {
        use sha2::Digest as _;
        (Digest(self.sha256.finalize().into()), self.extra.finish())
    }
}

/// The extra checksums of a stream, those asked for.
#[derive(Clone)]
pub struct Extra {
    sha1: Option<sha1::Sha1>,
    md5: Option<md5::Md5>,
    sha512: Option<sha2::Sha512>,
}

impl Extra {
    pub fn new(want: Want) -> Self {
        use sha2::Digest as _;
        Extra {
            sha1: want.sha1.then(sha1::Sha1::new),
            md5: want.md5.then(md5::Md5::new),
            sha512: want.sha512.then(sha2::Sha512::new),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.md5 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    pub fn finish(self) -> Checksums {
        use sha2::Digest as _;
        Checksums {
            sha1: self.sha1.map(|h| hex::encode(h.finalize())),
            md5: self.md5.map(|h| hex::encode(h.finalize())),
            sha512: self.sha512.map(|h| hex::encode(h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let d = Digest::of(b"");
        let text = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(d.to_string(), text);
        assert_eq!(text.parse::<Digest>(), Ok(d));
        assert_eq!(text[7..].parse::<Digest>(), Ok(d));
        for bad in [
            "sha256:",
            "sha512:e3b0",
            &text.to_uppercase(),
            &format!("{text}0"),
            "sha256:../../etc/passwd",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn all_checksums_in_one_pass() {
        let mut h = Hasher::new(Want::ALL);
        h.update(b"hello ");
        h.update(b"world");
        let (digest, sums) = h.finish();
        assert_eq!(digest, Digest::of(b"hello world"));
        assert_eq!(
            sums.sha1.as_deref(),
            Some("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed")
        );
        assert_eq!(
            sums.md5.as_deref(),
            Some("5eb63bbbe01eeed093cb22bb8f5acdc3")
        );
        assert!(
            sums.sha512
                .unwrap()
                .starts_with("309ecc489c12d6eb4cc40f50c902f2b4")
        );
        assert_eq!(Hasher::new(Want::NONE).finish().1, Checksums::default());
    }
}
