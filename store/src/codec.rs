//! The data codec: what a session's data attribute holds when the store compresses or
//! encrypts it ([`DynamoStore::with_codec`](crate::DynamoStore::with_codec)). Off by
//! default: without it the store writes plain JSON text (`S`), as it always has.
//!
//! # The encoded form
//!
//! A Binary (`B`) attribute: a small header, then the payload.
//!
//! | bytes | holds |
//! |-------|-------|
//! | 1 | format version, [`FORMAT_VERSION`] (1) |
//! | 1 | flags: [`COMPRESSED`] (zstd), [`ENCRYPTED`] (XChaCha20-Poly1305); no other bit is set |
//! | 1 + n | when encrypted: the key id's length `n` (1 to [`MAX_KEY_ID_BYTES`]), then the key id (ASCII) |
//! | 24 | when encrypted: the nonce, random |
//! | rest | the JSON, compressed if flagged, then encrypted if flagged (ciphertext and its 16-byte tag) |
//!
//! The associated data of the encryption is a domain string, the header up to the key id,
//! and the item's key: a blob moved to another session's item, or a header edited (the
//! flags, the key id), fails authentication. Compression comes before encryption.
//!
//! # What the codec does
//!
//! - **Compression** ([`Codec::with_compression`]): data of at least
//!   [`DEFAULT_COMPRESS_FROM`] bytes (1 KiB, chosen by measurement: BENCHMARKS.md,
//!   scenario 9) is compressed with zstd, and kept so only when it is smaller. A 1 MB
//!   session of realistic JSON fits in one 400 KB item.
//! - **Encryption** ([`Codec::with_encryption`]): every save is encrypted under the key
//!   ring's primary key ([`KeyRing`]); data encrypted under any key in the ring decodes.
//!   Data not as the codec would write it (plain JSON, or under an older key) still
//!   reads, and **that read re-encrypts it** under the primary key: one `UpdateItem` of
//!   the data alone, conditional on the data read ([`Codec::is_current`]). So every
//!   session in use is encrypted, or moved to a new key, by its next request that loads
//!   it, even one that only reads it or then only touches its expiry (actix-session's
//!   `update_ttl` follows a load). A bare [`DynamoStore::touch`](crate::DynamoStore::touch)
//!   reads nothing, and so re-encrypts nothing.
//! - **Requiring it** ([`Codec::requiring_encryption`]): data that is not encrypted
//!   loads as absent. Until then, anyone who can write to the table can plant plain JSON
//!   of their choosing as a session's data; turn it on one session lifetime after
//!   encryption.
//!
//! # Data that does not decode
//!
//! Truncated, altered, or moved from another item; a version, flags or header this build
//! does not know; a key id not in the ring; encrypted data and no key ring; data not
//! encrypted where encryption is required; a decompression that fails or exceeds
//! [`Codec::with_max_decoded_bytes`]: [`Codec::decode`] returns the [`CodecError`]
//! naming it, and never panics. **The store loads such a session as absent**, with one
//! warning naming the problem and the session (by its log label), and writes nothing to
//! it: the app starts a new session under a new id, and the sweeper deletes the old item
//! when it expires. So removing a key from the ring ends the sessions still under it, as
//! signing out would, and a tampered item never reaches the app.
//!
//! What encryption does not stop: someone who can write to the table can still delete a
//! session, change its expiry, or put back an older copy of the same session's item
//! (a replay of its own earlier data, under its own key).
//!
//! # Turning encryption on, and rotating keys, across a fleet
//!
//! Instances roll to a new configuration one at a time, so each step must leave every
//! instance able to read what the others write:
//!
//! - **Turning it on**: (1) deploy the version that has the codec, with
//!   [`Codec::with_decryption`] (reads encrypted data, writes none) and the ring; (2)
//!   then [`Codec::with_encryption`]; (3) one session lifetime later,
//!   [`Codec::requiring_encryption`].
//! - **Rotating** from key A to key B ([`generate_key`], or 32 random bytes from your
//!   secret manager): (1) deploy the ring `a,b` (A primary, B listed): nothing changes,
//!   but every instance can read B; (2) deploy `b,a`: saves, and reads of sessions under
//!   A, encrypt under B; (3) after one session lifetime (the store's default TTL, or your
//!   longest expiry), deploy `b` alone. A session still under A then (one not used during
//!   the whole lifetime) loads as absent, and its user signs in again.
//!
//! As an environment variable: `SESSION_ENCRYPTION_KEYS="b=<base64>,a=<base64>"`, the
//! primary first ([`KeyRing::parse`], [`KeyRing::from_env`]).
//!
//! # What a reader of the table learns
//!
//! The key is a hash of the id, the expiry and the owner (if used) are plaintext, and the
//! data is ciphertext; the key id shows. Its length, and so roughly the length of the
//! JSON (compressed, when compression is on), shows. Compression before encryption can
//! leak, through the length, whether attacker-chosen data stored in a session matches a
//! secret stored in the same session; if an attacker can both write into a session and
//! read the table's item sizes, turn compression off ([`Codec::without_compression`]).

use std::fmt;

use crate::schema::StoredData;

/// The version of the encoded form this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The flag of a zstd-compressed payload.
pub const COMPRESSED: u8 = 0x01;
/// The flag of an XChaCha20-Poly1305-encrypted payload.
pub const ENCRYPTED: u8 = 0x02;
/// The longest key id.
pub const MAX_KEY_ID_BYTES: usize = 32;
/// The length of an encryption key.
pub const KEY_BYTES: usize = 32;
/// The nonce's length (XChaCha20-Poly1305).
pub const NONCE_BYTES: usize = 24;
/// The authentication tag's length.
pub const TAG_BYTES: usize = 16;
/// Data from this size up is compressed (when compression is on): 1 KiB. Below it, a
/// save costs one write unit whatever its size, so compressing saves nothing.
pub const DEFAULT_COMPRESS_FROM: usize = 1024;
/// The zstd level: 3, zstd's default, the best ratio for its speed on session JSON.
pub const COMPRESSION_LEVEL: i32 = 3;
/// The default largest decoded data: 16 MiB. A compressed blob that decompresses to
/// more is refused ([`CodecError::TooLarge`]), not allocated.
pub const DEFAULT_MAX_DECODED_BYTES: usize = 16 * 1024 * 1024;

/// The domain string the associated data starts with.
#[cfg(feature = "codec")]
const AAD_DOMAIN: &[u8] = b"dynamo-session-store/data/v1\0";

/// Why data could not be encoded or decoded, or a key ring not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes end before the header, the nonce or the tag does.
    #[error("the encoded data is truncated: {0}")]
    Truncated(&'static str),
    /// The header is not one this codec writes (a key id of the wrong length or
    /// characters).
    #[error("the encoded data has a malformed header: {0}")]
    MalformedHeader(&'static str),
    /// Plain or unencrypted data read by a codec that requires encryption
    /// ([`Codec::requiring_encryption`]).
    #[error("the data is not encrypted, and this store accepts only encrypted data")]
    NotEncrypted,
    /// A format version this build does not read.
    #[error("the encoded data has format version {0}; this build reads version {FORMAT_VERSION}")]
    UnknownVersion(u8),
    /// Flags this build does not know.
    #[error("the encoded data has unknown flags {0:#04x}")]
    UnknownFlags(u8),
    /// Encrypted under a key id that is not in the key ring.
    #[error("the data is encrypted under key `{0}`, which is not in the key ring")]
    UnknownKey(String),
    /// Encrypted, and the codec has no key ring.
    #[error("the data is encrypted (key `{0}`) and the store has no key ring")]
    NoKeyRing(String),
    /// The authentication failed: the bytes were altered, moved from another item, or
    /// encrypted under another key with the same id.
    #[error(
        "the encrypted data fails authentication under key `{0}`: altered, moved from another \
         item, or encrypted under another key of that id"
    )]
    Tampered(String),
    /// The compressed payload does not decompress.
    #[error("the compressed data does not decompress: {0}")]
    Decompress(String),
    /// The payload decompresses to more than the codec's limit.
    #[error("the compressed data decompresses to more than {limit} bytes")]
    TooLarge {
        /// [`Codec::with_max_decoded_bytes`].
        limit: usize,
    },
    /// The decoded bytes are not UTF-8 text.
    #[error("the decoded data is not UTF-8 text")]
    NotText,
    /// Encoded with a feature this build does not have.
    #[error("the data is {0}: this build of dynamo-session-store lacks its `codec` feature")]
    NotBuilt(&'static str),
    /// A key or key id given to a [`KeyRing`] is not usable.
    #[error("invalid key ring: {0}")]
    InvalidKeyRing(String),
    /// Compression or encryption failed while encoding.
    #[error("could not encode the session data: {0}")]
    Encode(String),
}

/// A parsed header: flags, the key id when encrypted, and where the rest starts.
#[derive(Debug, PartialEq, Eq)]
struct Header<'a> {
    flags: u8,
    /// The key id and the nonce, when encrypted.
    key: Option<(&'a str, &'a [u8])>,
    /// The header's bytes up to and including the key id: authenticated.
    authenticated: &'a [u8],
    payload: &'a [u8],
}

/// Parses the header of encoded data. Total: any bytes give a header or an error.
fn parse_header(bytes: &[u8]) -> Result<Header<'_>, CodecError> {
    let [version, flags, rest @ ..] = bytes else {
        return Err(CodecError::Truncated("no version and flags"));
    };
    if *version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(*version));
    }
    if flags & !(COMPRESSED | ENCRYPTED) != 0 {
        return Err(CodecError::UnknownFlags(*flags));
    }
    if flags & ENCRYPTED == 0 {
        return Ok(Header {
            flags: *flags,
            key: None,
            authenticated: &bytes[..2],
            payload: rest,
        });
    }
    let [id_len, rest @ ..] = rest else {
        return Err(CodecError::Truncated("no key id"));
    };
    let id_len = usize::from(*id_len);
    if id_len == 0 || id_len > MAX_KEY_ID_BYTES {
        return Err(CodecError::MalformedHeader("the key id's length"));
    }
    if rest.len() < id_len {
        return Err(CodecError::Truncated("the key id"));
    }
    let (id, rest) = rest.split_at(id_len);
    let id = std::str::from_utf8(id)
        .ok()
        .filter(|id| valid_key_id(id))
        .ok_or(CodecError::MalformedHeader("the key id's characters"))?;
    if rest.len() < NONCE_BYTES + TAG_BYTES {
        return Err(CodecError::Truncated("the nonce and tag"));
    }
    let (nonce, payload) = rest.split_at(NONCE_BYTES);
    Ok(Header {
        flags: *flags,
        key: Some((id, nonce)),
        authenticated: &bytes[..3 + id_len],
        payload,
    })
}

/// Key ids: 1 to [`MAX_KEY_ID_BYTES`] of ASCII letters, digits, `-`, `_`, `.`.
fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_BYTES).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a store does to session data on its way to and from the table. The default
/// ([`Codec::new`]) does nothing: plain JSON text, and encoded data read when this build
/// can.
#[derive(Clone)]
pub struct Codec {
    /// Compress data from this many bytes; `None`: never.
    compress_from: Option<usize>,
    #[cfg(feature = "codec")]
    keys: Option<KeyRing>,
    /// Whether saves are encrypted (with `keys`); `false` with keys: decryption only.
    encrypt: bool,
    /// Whether data not encrypted is refused on reads.
    require_encrypted: bool,
    max_decoded: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Codec");
        d.field("compress_from", &self.compress_from);
        #[cfg(feature = "codec")]
        d.field("keys", &self.keys);
        d.field("encrypt", &self.encrypt)
            .field("require_encrypted", &self.require_encrypted)
            .field("max_decoded", &self.max_decoded)
            .finish()
    }
}

impl Codec {
    /// A codec that writes plain JSON and reads every form this build knows.
    pub fn new() -> Self {
        Self {
            compress_from: None,
            #[cfg(feature = "codec")]
            keys: None,
            encrypt: false,
            require_encrypted: false,
            max_decoded: DEFAULT_MAX_DECODED_BYTES,
        }
    }

    /// Compresses data of [`DEFAULT_COMPRESS_FROM`] bytes or more with zstd.
    #[cfg(feature = "codec")]
    #[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
    pub fn with_compression(self) -> Self {
        self.with_compression_from(DEFAULT_COMPRESS_FROM)
    }

    /// Compresses data of `bytes` bytes or more with zstd.
    #[cfg(feature = "codec")]
    #[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
    pub fn with_compression_from(mut self, bytes: usize) -> Self {
        self.compress_from = Some(bytes);
        self
    }

    /// Writes nothing compressed (compressed data still reads).
    pub fn without_compression(mut self) -> Self {
        self.compress_from = None;
        self
    }

    /// Encrypts every save under `keys`' primary key; decrypts under any of its keys.
    /// Data written before (plain JSON, or compressed only) still reads, and is
    /// encrypted by the first read that finds it ([`Codec::is_current`]); once every
    /// session has been, refuse it with [`requiring_encryption`](Self::requiring_encryption).
    #[cfg(feature = "codec")]
    #[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
    pub fn with_encryption(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self.encrypt = true;
        self
    }

    /// Decrypts under `keys`, and encrypts nothing: the first step of turning encryption
    /// on across a fleet (deploy this everywhere, then
    /// [`with_encryption`](Self::with_encryption)), so that no instance meets data it
    /// cannot read while a deployment rolls.
    #[cfg(feature = "codec")]
    #[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
    pub fn with_decryption(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self.encrypt = false;
        self
    }

    /// Refuses data that is not encrypted: plain JSON, or compressed only, loads as
    /// absent ([`CodecError::NotEncrypted`]). Applies with
    /// [`with_encryption`](Self::with_encryption) only
    /// ([`requires_encryption`](Self::requires_encryption)). Without it, anyone who can write to the
    /// table can replace a session's data with plain JSON of their choosing, which the
    /// store would accept. Turn it on once every session has been encrypted: one session
    /// lifetime after [`with_encryption`](Self::with_encryption).
    #[cfg(feature = "codec")]
    #[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
    pub fn requiring_encryption(mut self) -> Self {
        self.require_encrypted = true;
        self
    }

    /// The largest data a compressed blob may decompress to (default
    /// [`DEFAULT_MAX_DECODED_BYTES`], 16 MiB).
    pub fn with_max_decoded_bytes(mut self, bytes: usize) -> Self {
        self.max_decoded = bytes;
        self
    }

    /// Whether saves are encrypted.
    pub fn encrypts(&self) -> bool {
        #[cfg(feature = "codec")]
        return self.encrypt && self.keys.is_some();
        #[cfg(not(feature = "codec"))]
        false
    }

    /// Whether reads refuse data that is not encrypted:
    /// [`requiring_encryption`](Self::requiring_encryption) on a codec that encrypts. On
    /// one that does not (no keys, or decryption only) it would refuse the plain data it
    /// writes itself, so it does not apply.
    pub fn requires_encryption(&self) -> bool {
        self.require_encrypted && self.encrypts()
    }

    /// Whether this codec writes anything but plain JSON.
    pub fn is_on(&self) -> bool {
        self.compress_from.is_some() || self.encrypts()
    }

    /// Whether `data` is as this codec would leave it: when it encrypts, encrypted under
    /// the ring's primary key; when it does not, any form (a codec that does not encrypt
    /// never rewrites what another instance encrypted). A store rewrites data that is not
    /// when it reads it (one `UpdateItem`, conditional on the data read), so that
    /// rotation, and turning encryption on, reach every session that is loaded, even one
    /// whose data never changes.
    pub fn is_current(&self, data: &StoredData) -> bool {
        #[cfg(feature = "codec")]
        if let (true, Some(keys)) = (self.encrypt, &self.keys) {
            return match data {
                StoredData::Json(_) => false,
                StoredData::Encoded(bytes) => parse_header(bytes)
                    .is_ok_and(|h| h.key.is_some_and(|(id, _)| id == keys.primary_id())),
            };
        }
        let _ = data;
        true
    }

    /// Encodes `json`, the data of the item under `item_key` (the table key, from
    /// [`ItemSchema::key_for`](crate::ItemSchema::key_for)): plain JSON when neither
    /// compression (below its threshold) nor encryption applies.
    ///
    /// # Errors
    /// [`CodecError::Encode`] if compression or encryption fails (neither does on data
    /// that fits in an item).
    pub fn encode(&self, item_key: &str, json: String) -> Result<StoredData, CodecError> {
        let compress = self
            .compress_from
            .is_some_and(|from| json.len() >= from.max(1));
        if !compress && !self.encrypts() {
            return Ok(StoredData::Json(json));
        }
        #[cfg(not(feature = "codec"))]
        {
            let _ = item_key;
            unreachable!("without the `codec` feature, no codec compresses or encrypts")
        }
        #[cfg(feature = "codec")]
        {
            let mut flags = 0;
            let mut payload = json.into_bytes();
            if compress {
                let packed = zstd::bulk::compress(&payload, COMPRESSION_LEVEL)
                    .map_err(|e| CodecError::Encode(format!("zstd: {e}")))?;
                if packed.len() < payload.len() {
                    payload = packed;
                    flags |= COMPRESSED;
                }
            }
            // Keys held for decryption only ([`Codec::with_decryption`]) never encrypt.
            let Some(keys) = self.keys.as_ref().filter(|_| self.encrypt) else {
                if flags == 0 {
                    // Compression did not pay: plain JSON it stays.
                    let json = String::from_utf8(payload).expect("it was a String");
                    return Ok(StoredData::Json(json));
                }
                let mut out = Vec::with_capacity(2 + payload.len());
                out.extend_from_slice(&[FORMAT_VERSION, flags]);
                out.extend_from_slice(&payload);
                return Ok(StoredData::Encoded(out));
            };
            flags |= ENCRYPTED;
            let (id, cipher) = keys.primary();
            let mut out =
                Vec::with_capacity(3 + id.len() + NONCE_BYTES + payload.len() + TAG_BYTES);
            out.extend_from_slice(&[FORMAT_VERSION, flags, id.len() as u8]);
            out.extend_from_slice(id.as_bytes());
            let aad = associated_data(&out, item_key);
            let mut nonce = [0u8; NONCE_BYTES];
            getrandom::fill(&mut nonce)
                .map_err(|e| CodecError::Encode(format!("no random nonce: {e}")))?;
            let sealed = crypto::seal(cipher, &nonce, &payload, &aad)?;
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&sealed);
            Ok(StoredData::Encoded(out))
        }
    }

    /// Decodes the data of the item under `item_key` back to its JSON text: plain JSON
    /// as it is, encoded data by its header. Total: never panics, whatever the bytes.
    ///
    /// # Errors
    /// The [`CodecError`] naming why the data does not decode.
    pub fn decode(&self, item_key: &str, data: StoredData) -> Result<String, CodecError> {
        let bytes = match data {
            StoredData::Json(_) if self.requires_encryption() => {
                return Err(CodecError::NotEncrypted);
            }
            StoredData::Json(json) => return Ok(json),
            StoredData::Encoded(bytes) => bytes,
        };
        let header = parse_header(&bytes)?;
        if self.requires_encryption() && header.key.is_none() {
            return Err(CodecError::NotEncrypted);
        }
        let opened: Vec<u8>;
        let mut payload = header.payload;
        if let Some((id, nonce)) = header.key {
            opened = self.open(id, nonce, payload, header.authenticated, item_key)?;
            payload = &opened;
        }
        let text = if header.flags & COMPRESSED != 0 {
            decompress(payload, self.max_decoded)?
        } else {
            payload.to_vec()
        };
        String::from_utf8(text).map_err(|_| CodecError::NotText)
    }
}

impl Codec {
    /// Decrypts `payload`, encrypted under key `id` with `nonce`.
    #[cfg(feature = "codec")]
    fn open(
        &self,
        id: &str,
        nonce: &[u8],
        payload: &[u8],
        header: &[u8],
        item_key: &str,
    ) -> Result<Vec<u8>, CodecError> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| CodecError::NoKeyRing(id.to_owned()))?;
        let cipher = keys
            .get(id)
            .ok_or_else(|| CodecError::UnknownKey(id.to_owned()))?;
        crypto::open(cipher, nonce, payload, &associated_data(header, item_key))
            .ok_or_else(|| CodecError::Tampered(id.to_owned()))
    }

    #[cfg(not(feature = "codec"))]
    fn open(&self, _: &str, _: &[u8], _: &[u8], _: &[u8], _: &str) -> Result<Vec<u8>, CodecError> {
        Err(CodecError::NotBuilt("encrypted"))
    }
}

#[cfg(feature = "codec")]
fn decompress(payload: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    use std::io::Read as _;
    let too_large = CodecError::TooLarge { limit };
    // A frame that declares its size (the codec's own do) is checked against the limit
    // before anything is allocated, and decompressed in one call into exactly that.
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(payload) {
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= limit)
            .ok_or(too_large)?;
        return zstd::bulk::decompress(payload, size)
            .map_err(|e| CodecError::Decompress(e.to_string()));
    }
    // Otherwise streamed, reading at most one byte past the limit: memory grows with the
    // output, never beyond the limit.
    let mut out = Vec::new();
    zstd::stream::read::Decoder::with_buffer(payload)
        .and_then(|d| {
            d.take((limit as u64).saturating_add(1))
                .read_to_end(&mut out)
        })
        .map_err(|e| CodecError::Decompress(e.to_string()))?;
    if out.len() > limit {
        return Err(too_large);
    }
    Ok(out)
}

#[cfg(not(feature = "codec"))]
fn decompress(_payload: &[u8], _limit: usize) -> Result<Vec<u8>, CodecError> {
    Err(CodecError::NotBuilt("compressed"))
}

/// The associated data: the domain string, the authenticated header, the item's key.
#[cfg(feature = "codec")]
fn associated_data(header: &[u8], item_key: &str) -> Vec<u8> {
    [AAD_DOMAIN, header, item_key.as_bytes()].concat()
}

#[cfg(feature = "codec")]
mod crypto {
    use chacha20poly1305::aead::{Aead, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};

    use super::{CodecError, NONCE_BYTES};

    pub(super) fn seal(
        cipher: &XChaCha20Poly1305,
        nonce: &[u8; NONCE_BYTES],
        msg: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CodecError> {
        cipher
            .encrypt(&XNonce::from(*nonce), Payload { msg, aad })
            .map_err(|_| CodecError::Encode("encryption failed".into()))
    }

    pub(super) fn open(
        cipher: &XChaCha20Poly1305,
        nonce: &[u8],
        msg: &[u8],
        aad: &[u8],
    ) -> Option<Vec<u8>> {
        let nonce = <[u8; NONCE_BYTES]>::try_from(nonce).ok()?;
        cipher
            .decrypt(&XNonce::from(nonce), Payload { msg, aad })
            .ok()
    }
}

/// A fresh random 32-byte key, base64-encoded: a value for [`KeyRing::parse`].
///
/// # Errors
/// [`CodecError::Encode`] when the operating system gives no random bytes.
#[cfg(feature = "codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
pub fn generate_key() -> Result<String, CodecError> {
    use base64::Engine as _;
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| CodecError::Encode(format!("no random key: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

/// The keys a codec encrypts and decrypts with: one primary key, which encrypts every
/// save, and older keys that only decrypt. Each key has an id, written in the header of
/// what it encrypts. Its `Debug` shows the ids, never the keys.
#[cfg(feature = "codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
#[derive(Clone)]
pub struct KeyRing {
    /// The primary key first.
    keys: Vec<(String, chacha20poly1305::XChaCha20Poly1305)>,
}

#[cfg(feature = "codec")]
impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("primary", &self.keys[0].0)
            .field(
                "older",
                &self.keys[1..].iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The environment variable [`KeyRing::from_env`] reads.
#[cfg(feature = "codec")]
pub const KEYS_ENV: &str = "SESSION_ENCRYPTION_KEYS";

#[cfg(feature = "codec")]
impl KeyRing {
    /// A ring whose primary key is `key`, with id `id` (1 to [`MAX_KEY_ID_BYTES`] ASCII
    /// letters, digits, `-`, `_`, `.`).
    ///
    /// # Errors
    /// [`CodecError::InvalidKeyRing`] naming a bad id.
    pub fn new(id: &str, key: [u8; KEY_BYTES]) -> Result<Self, CodecError> {
        Ok(Self {
            keys: vec![(check_id(id)?, cipher(key))],
        })
    }

    /// Adds an older key, which decrypts and never encrypts.
    ///
    /// # Errors
    /// [`CodecError::InvalidKeyRing`] naming a bad or repeated id.
    pub fn with_older_key(mut self, id: &str, key: [u8; KEY_BYTES]) -> Result<Self, CodecError> {
        let id = check_id(id)?;
        if self.get(&id).is_some() {
            return Err(CodecError::InvalidKeyRing(format!(
                "the key id `{id}` is listed twice"
            )));
        }
        self.keys.push((id, cipher(key)));
        Ok(self)
    }

    /// Parses `id=<base64 key>` entries separated by commas, the primary first:
    /// `b=…,a=…`. Keys are 32 bytes in standard or URL-safe base64, padded or not.
    ///
    /// # Errors
    /// [`CodecError::InvalidKeyRing`] naming the entry that is wrong (never the key).
    pub fn parse(spec: &str) -> Result<Self, CodecError> {
        let mut ring: Option<Self> = None;
        // Entries are named by their position only: text that is not a valid id may be a
        // key (`<key>` without its `id=`), and must never reach an error message.
        for (n, entry) in spec.split(',').map(str::trim).enumerate() {
            let n = n + 1;
            let Some((id, key)) = entry
                .split_once('=')
                .filter(|(id, _)| valid_key_id(id.trim()))
            else {
                return Err(CodecError::InvalidKeyRing(format!(
                    "entry {n} is not `id=<base64 key>` with an id of 1 to {MAX_KEY_ID_BYTES} \
                     ASCII letters, digits, `-`, `_` or `.`"
                )));
            };
            let key = decode_key(key.trim()).ok_or_else(|| {
                CodecError::InvalidKeyRing(format!(
                    "the key of entry {n} is not {KEY_BYTES} bytes of base64"
                ))
            })?;
            ring = Some(match ring {
                None => Self::new(id.trim(), key)?,
                Some(ring) => ring.with_older_key(id.trim(), key)?,
            });
        }
        ring.ok_or_else(|| CodecError::InvalidKeyRing("no key".into()))
    }

    /// [`parse`](Self::parse) of [`KEYS_ENV`] (`SESSION_ENCRYPTION_KEYS`); `Ok(None)`
    /// when it is unset or empty.
    ///
    /// # Errors
    /// [`CodecError::InvalidKeyRing`], as [`parse`](Self::parse), and when the variable
    /// is set but not Unicode (it is never silently ignored).
    pub fn from_env() -> Result<Option<Self>, CodecError> {
        match std::env::var(KEYS_ENV) {
            Ok(spec) if !spec.trim().is_empty() => Self::parse(&spec).map(Some),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(CodecError::InvalidKeyRing(format!(
                "{KEYS_ENV} is set but not Unicode text"
            ))),
        }
    }

    /// The id of the primary key.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    /// The ids of every key, the primary first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    fn primary(&self) -> (&str, &chacha20poly1305::XChaCha20Poly1305) {
        let (id, cipher) = &self.keys[0];
        (id, cipher)
    }

    fn get(&self, id: &str) -> Option<&chacha20poly1305::XChaCha20Poly1305> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, c)| c)
    }
}

#[cfg(feature = "codec")]
fn check_id(id: &str) -> Result<String, CodecError> {
    if valid_key_id(id) {
        Ok(id.to_owned())
    } else {
        Err(CodecError::InvalidKeyRing(format!(
            "the key id `{}` is not 1 to {MAX_KEY_ID_BYTES} ASCII letters, digits, `-`, `_` or `.`",
            id.escape_debug()
        )))
    }
}

#[cfg(feature = "codec")]
fn cipher(key: [u8; KEY_BYTES]) -> chacha20poly1305::XChaCha20Poly1305 {
    use chacha20poly1305::KeyInit as _;
    chacha20poly1305::XChaCha20Poly1305::new(&chacha20poly1305::Key::from(key))
}

#[cfg(feature = "codec")]
fn decode_key(text: &str) -> Option<[u8; KEY_BYTES]> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let text = text.trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(all(test, feature = "codec"))]
mod tests {
    use super::*;

    const KEY: &str = "app1:~abc";

    fn ring() -> KeyRing {
        KeyRing::new("a", [7; 32]).unwrap()
    }

    fn json(n: usize) -> String {
        let items: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"sku":"item-{i}","qty":{},"price":"{}.99"}}"#,
                    i % 5,
                    i % 50
                )
            })
            .collect();
        format!(r#"{{"cart":[{}]}}"#, items.join(","))
    }

    #[test]
    fn the_default_codec_writes_plain_json() {
        let codec = Codec::new();
        let out = codec.encode(KEY, json(100)).unwrap();
        assert_eq!(out, StoredData::Json(json(100)));
        assert_eq!(codec.decode(KEY, out).unwrap(), json(100));
    }

    #[test]
    fn compression_applies_from_its_threshold_and_only_when_it_pays() {
        let codec = Codec::new().with_compression();
        let small = r#"{"a":1}"#.to_owned();
        assert_eq!(
            codec.encode(KEY, small.clone()).unwrap(),
            StoredData::Json(small.clone())
        );
        let big = json(200);
        let StoredData::Encoded(bytes) = codec.encode(KEY, big.clone()).unwrap() else {
            panic!("compressed data is encoded");
        };
        assert_eq!(&bytes[..2], &[FORMAT_VERSION, COMPRESSED]);
        assert!(
            bytes.len() * 4 < big.len(),
            "{} of {}",
            bytes.len(),
            big.len()
        );
        // Compression only: no key is needed to read it.
        assert_eq!(
            Codec::new()
                .decode(KEY, StoredData::Encoded(bytes))
                .unwrap(),
            big
        );
        // Data that compression would grow stays plain.
        let tiny = Codec::new().with_compression_from(1);
        assert_eq!(
            tiny.encode(KEY, small.clone()).unwrap(),
            StoredData::Json(small)
        );
    }

    #[test]
    fn encryption_binds_the_item_key_and_the_header() {
        let codec = Codec::new().with_encryption(ring());
        let data = json(3);
        let StoredData::Encoded(bytes) = codec.encode(KEY, data.clone()).unwrap() else {
            panic!("encrypted data is encoded");
        };
        assert_eq!(&bytes[..4], &[FORMAT_VERSION, ENCRYPTED, 1, b'a']);
        assert!(!bytes.windows(6).any(|w| w == b"item-0"));
        assert_eq!(
            codec
                .decode(KEY, StoredData::Encoded(bytes.clone()))
                .unwrap(),
            data
        );
        // Moved to another item.
        assert_eq!(
            codec.decode("app1:~abd", StoredData::Encoded(bytes.clone())),
            Err(CodecError::Tampered("a".into()))
        );
        // Each byte of the header, nonce, ciphertext and tag is covered.
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(
                codec.decode(KEY, StoredData::Encoded(bad)).is_err(),
                "byte {i}"
            );
        }
        // Two saves of the same data differ (random nonces).
        assert_ne!(
            codec.encode(KEY, data.clone()).unwrap(),
            codec.encode(KEY, data).unwrap()
        );
    }

    #[test]
    fn every_bad_blob_is_named() {
        let codec = Codec::new()
            .with_compression_from(1)
            .with_encryption(ring());
        let StoredData::Encoded(good) = codec.encode(KEY, json(50)).unwrap() else {
            panic!()
        };
        let decode = |b: &[u8]| codec.decode(KEY, StoredData::Encoded(b.to_vec()));
        assert!(matches!(decode(&[]), Err(CodecError::Truncated(_))));
        assert!(matches!(
            decode(&[1, ENCRYPTED, 0]),
            Err(CodecError::MalformedHeader(_))
        ));
        assert!(matches!(
            decode(&[1, ENCRYPTED, 40]),
            Err(CodecError::MalformedHeader(_))
        ));
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(CodecError::Tampered(_))
        ));
        assert!(matches!(decode(&good[..20]), Err(CodecError::Truncated(_))));
        assert_eq!(
            decode(&[2, 0, b'{', b'}']),
            Err(CodecError::UnknownVersion(2))
        );
        assert_eq!(decode(&[1, 0x80]), Err(CodecError::UnknownFlags(0x80)));
        let mut other_id = good.clone();
        other_id[3] = b'z';
        assert_eq!(decode(&other_id), Err(CodecError::UnknownKey("z".into())));
        assert_eq!(
            Codec::new().decode(KEY, StoredData::Encoded(good.clone())),
            Err(CodecError::NoKeyRing("a".into()))
        );
        let other_key = Codec::new().with_encryption(KeyRing::new("a", [8; 32]).unwrap());
        assert_eq!(
            other_key.decode(KEY, StoredData::Encoded(good)),
            Err(CodecError::Tampered("a".into()))
        );
        assert!(matches!(
            decode(&[1, COMPRESSED, 1, 2, 3]),
            Err(CodecError::Decompress(_))
        ));
        assert_eq!(decode(&[1, 0, 0xff, 0xfe]), Err(CodecError::NotText));
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_it_is_allocated() {
        let huge = format!(r#"{{"z":"{}"}}"#, "0".repeat(1_000_000));
        let codec = Codec::new()
            .with_compression()
            .with_max_decoded_bytes(100_000);
        let stored = codec.encode(KEY, huge).unwrap();
        assert!(stored.len() < 1000, "{}", stored.len());
        assert_eq!(
            codec.decode(KEY, stored),
            Err(CodecError::TooLarge { limit: 100_000 })
        );
    }

    #[test]
    fn a_frame_without_its_size_is_streamed_up_to_the_limit() {
        use std::io::Write as _;
        let json = format!(r#"{{"z":"{}"}}"#, "0".repeat(50_000));
        // A frame that does not declare its size, as another zstd writer may make.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.write_all(json.as_bytes()).unwrap();
        let frame = encoder.finish().unwrap();
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&frame),
            Ok(None)
        ));
        let blob = [&[FORMAT_VERSION, COMPRESSED][..], &frame].concat();
        assert_eq!(
            Codec::new()
                .decode(KEY, StoredData::Encoded(blob.clone()))
                .unwrap(),
            json
        );
        assert_eq!(
            Codec::new()
                .with_max_decoded_bytes(10_000)
                .decode(KEY, StoredData::Encoded(blob)),
            Err(CodecError::TooLarge { limit: 10_000 })
        );
    }

    #[test]
    fn requiring_encryption_refuses_plain_and_compressed_data() {
        let strict = Codec::new().with_encryption(ring()).requiring_encryption();
        assert_eq!(
            strict.decode(KEY, StoredData::Json(json(1))),
            Err(CodecError::NotEncrypted)
        );
        let compressed = Codec::new()
            .with_compression_from(1)
            .encode(KEY, json(40))
            .unwrap();
        assert!(matches!(compressed, StoredData::Encoded(_)));
        assert_eq!(
            strict.decode(KEY, compressed),
            Err(CodecError::NotEncrypted)
        );
        let sealed = strict.encode(KEY, json(2)).unwrap();
        assert_eq!(strict.decode(KEY, sealed).unwrap(), json(2));
    }

    #[test]
    fn decryption_only_reads_everything_and_rewrites_nothing() {
        let sealed = Codec::new()
            .with_encryption(ring())
            .encode(KEY, json(2))
            .unwrap();
        let staged = Codec::new().with_decryption(ring());
        assert!(!staged.encrypts());
        assert_eq!(
            staged.encode(KEY, json(2)).unwrap(),
            StoredData::Json(json(2))
        );
        assert_eq!(staged.decode(KEY, sealed.clone()).unwrap(), json(2));
        assert!(staged.is_current(&sealed));
        assert!(staged.is_current(&StoredData::Json(json(2))));
        // Compression with keys held for decryption: compressed, never encrypted.
        let compressing = Codec::new()
            .with_compression_from(1)
            .with_decryption(ring());
        let StoredData::Encoded(bytes) = compressing.encode(KEY, json(40)).unwrap() else {
            panic!("compressed");
        };
        assert_eq!(&bytes[..2], &[FORMAT_VERSION, COMPRESSED]);
        // Requiring encryption does not apply where nothing is encrypted: such a codec
        // would refuse the plain data it writes itself.
        let odd = Codec::new().with_decryption(ring()).requiring_encryption();
        assert!(!odd.requires_encryption());
        assert_eq!(odd.decode(KEY, StoredData::Json(json(2))).unwrap(), json(2));
        let encrypting = Codec::new().with_encryption(ring());
        assert!(encrypting.is_current(&sealed));
        assert!(!encrypting.is_current(&StoredData::Json(json(2))));
        let rotated = Codec::new().with_encryption(
            KeyRing::new("b", [9; 32])
                .unwrap()
                .with_older_key("a", [7; 32])
                .unwrap(),
        );
        assert!(!rotated.is_current(&sealed));
    }

    #[test]
    fn rotation_reads_older_keys_and_writes_the_primary() {
        let a = Codec::new().with_encryption(ring());
        let under_a = a.encode(KEY, json(2)).unwrap();
        let b_then_a = Codec::new().with_encryption(
            KeyRing::new("b", [9; 32])
                .unwrap()
                .with_older_key("a", [7; 32])
                .unwrap(),
        );
        assert_eq!(b_then_a.decode(KEY, under_a.clone()).unwrap(), json(2));
        let StoredData::Encoded(under_b) = b_then_a.encode(KEY, json(2)).unwrap() else {
            panic!()
        };
        assert_eq!(&under_b[2..4], &[1, b'b']);
        let b = Codec::new().with_encryption(KeyRing::new("b", [9; 32]).unwrap());
        assert_eq!(
            b.decode(KEY, under_a),
            Err(CodecError::UnknownKey("a".into()))
        );
    }

    proptest::proptest! {
        /// Any bytes: a decoded text or a typed error, never a panic.
        #[test]
        fn the_decoder_is_total_on_random_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let codec = Codec::new().with_encryption(ring());
            let _ = codec.decode(KEY, StoredData::Encoded(bytes.clone()));
            let _ = Codec::new().decode(KEY, StoredData::Encoded(bytes));
        }

        /// Well-formed headers (any flags, key ids, nonces) over random payloads: a typed
        /// error, never a panic, and never a successful decryption.
        #[test]
        fn random_headers_never_decode(
            flags in 0u8..8,
            id in "[a-z]{1,3}",
            nonce in proptest::collection::vec(proptest::prelude::any::<u8>(), NONCE_BYTES),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut bytes = vec![FORMAT_VERSION, flags];
            if flags & ENCRYPTED != 0 {
                bytes.push(id.len() as u8);
                bytes.extend_from_slice(id.as_bytes());
                bytes.extend_from_slice(&nonce);
            }
            bytes.extend_from_slice(&payload);
            let out = Codec::new().with_encryption(ring()).decode(KEY, StoredData::Encoded(bytes));
            if flags & ENCRYPTED != 0 || flags > (COMPRESSED | ENCRYPTED) {
                proptest::prop_assert!(out.is_err());
            }
        }

        /// Any text round-trips through every codec.
        #[test]
        fn every_codec_round_trips(text in "\\PC{0,3000}") {
            for codec in [
                Codec::new(),
                Codec::new().with_compression_from(1),
                Codec::new().with_encryption(ring()),
                Codec::new().with_compression_from(1).with_encryption(ring()),
            ] {
                let stored = codec.encode(KEY, text.clone()).unwrap();
                proptest::prop_assert_eq!(codec.decode(KEY, stored).unwrap(), text.clone());
            }
        }
    }

    #[test]
    fn key_rings_parse_and_name_what_is_wrong_without_the_key() {
        let k = generate_key().unwrap();
        let ring = KeyRing::parse(&format!("b={k}, a={}", k.trim_end_matches('='))).unwrap();
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(ring.primary_id(), "b");
        assert!(!format!("{ring:?}").contains(&k[..8]));
        for (spec, needle) in [
            ("", "not `id=<base64 key>`"),
            ("a", "not `id=<base64 key>`"),
            ("a=abc", "not 32 bytes"),
            (&format!("a={k},a={k}"), "listed twice"),
            (&format!("a b={k}"), "entry 1 is not"),
            (&format!("={k}"), "entry 1 is not"),
            // A key without its id (padded base64 ends in `=`), or with `:`: the key
            // must not be quoted back.
            (&k.clone(), "entry 1 is not"),
            (&format!("k1:{k}"), "entry 1 is not"),
            (&format!("a={k},{k}"), "entry 2 is not"),
        ] {
            let err = KeyRing::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
            assert!(!err.contains(&k[..8]), "{err}");
        }
    }
}
