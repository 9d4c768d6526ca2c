//! WXBizMsgCrypt, the scheme WeCom uses to sign and encrypt event callbacks (§10.3 of the team's
//! notes `wecom-events.md`): a SHA-1 signature over four sorted values, and AES-256-CBC over
//! `random(16) ‖ msg_len (u32 BE) ‖ msg ‖ receiveid`, PKCS#7-padded to a multiple of **32**.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes::{Aes256, Block};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha1::{Digest, Sha1};

use crate::event_keys::{check_token, decode_aes_key};

/// Why a callback could not be opened. Each case carries the return code the official WeCom
/// libraries give for it (§10.3.6), so log lines can be compared with WeCom's documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A Token or EncodingAESKey that WeCom would never issue (−40004 "AESKey invalid").
    #[error("invalid event setting: {0}")]
    InvalidSetting(&'static str),
    /// `msg_signature`, `timestamp`, `nonce` (or `echostr` for the URL check) is missing: nothing
    /// can be verified, so this is treated like a failed signature (−40001).
    #[error("missing query parameter {0}")]
    MissingParameter(&'static str),
    /// The signature matches no configured channel (−40001).
    #[error("signature mismatch")]
    BadSignature,
    /// The body is not the XML WeCom sends, or the decrypted event is not (−40002).
    #[error("malformed XML: {0}")]
    Xml(&'static str),
    /// The body is larger than any event WeCom sends (policy: 64 KiB).
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The plaintext names another corporation or suite (−40005).
    #[error("receiveid mismatch")]
    ReceiveIdMismatch,
    /// Ciphertext of an impossible length, or padding outside 1..=32 (−40007).
    #[error("AES decryption failed")]
    DecryptFailed,
    /// The decrypted buffer is too short for its own `msg_len` (−40008).
    #[error("decrypted buffer invalid")]
    BadPlaintext,
    /// `Encrypt` / `echostr` is not standard base64 (−40010).
    #[error("base64 decoding failed")]
    BadBase64,
}

impl EventError {
    /// The official libraries' return code for this failure (not an HTTP status; never sent to
    /// WeCom).
    pub fn code(&self) -> i32 {
        match self {
            EventError::InvalidSetting(_) => -40004,
            EventError::MissingParameter(_) | EventError::BadSignature => -40001,
            EventError::Xml(_) | EventError::TooLarge(_) => -40002,
            EventError::ReceiveIdMismatch => -40005,
            EventError::DecryptFailed => -40007,
            EventError::BadPlaintext => -40008,
            EventError::BadBase64 => -40010,
        }
    }
}

/// PKCS#7 block size of the scheme: 32, not AES's 16 (§10.3.4).
const PAD_BLOCK: usize = 32;
/// random(16) + msg_len(4).
const HEADER_LEN: usize = 20;

/// One callback channel's Token, AES key and expected receiveid (the CorpID for a corporation's
/// own apps and its contact-sync assistant).
#[derive(Clone)]
pub struct EventCipher {
    token: SecretString,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for EventCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCipher")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl EventCipher {
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        receive_id: &str,
    ) -> Result<EventCipher, EventError> {
        check_token(token).map_err(|_| EventError::InvalidSetting("Token"))?;
        let key =
            decode_aes_key(encoding_aes_key).map_err(|_| EventError::InvalidSetting("AES key"))?;
        Ok(EventCipher {
            token: SecretString::from(token),
            key,
            receive_id: receive_id.to_owned(),
        })
    }

    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// `hex(sha1(concat(sort([token, timestamp, nonce, encrypted]))))`, lowercase \[D90968\]. The
    /// fourth value is `echostr` for the URL check and the `<Encrypt>` text for an event.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut values = [self.token.expose_secret(), timestamp, nonce, encrypted];
        values.sort_unstable();
        let mut sha1 = Sha1::new();
        for value in values {
            sha1.update(value.as_bytes());
        }
        hex::encode(sha1.finalize())
    }

    /// Compares in constant time, so timing does not reveal how much of a forged signature was
    /// right.
    pub fn verify_signature(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> bool {
        let expected = self.signature(timestamp, nonce, encrypted);
        crate::crypto::constant_time_eq(
            expected.as_bytes(),
            signature.to_ascii_lowercase().as_bytes(),
        )
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// Opens an `Encrypt` / `echostr` value (§10.3.5) and returns `msg`. Call it only after the
    /// signature verified, so unauthenticated input never reaches the padding checks.
    pub fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, EventError> {
        let raw = STANDARD
            .decode(encrypted)
            .map_err(|_| EventError::BadBase64)?;
        // Senders pad to 32; accepting any multiple of 16 matches most official libraries.
        if raw.len() < PAD_BLOCK || raw.len() % 16 != 0 {
            return Err(EventError::DecryptFailed);
        }
        let mut blocks: Vec<Block> = raw.chunks_exact(16).map(Block::clone_from_slice).collect();
        cbc::Decryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .decrypt_blocks_mut(&mut blocks);
        let plain: Vec<u8> = blocks.iter().flatten().copied().collect();

        // PKCS#7 by hand: a library unpadder bound to AES's 16-byte block would refuse the pads
        // 17..=32 that about half of real messages carry (§10.3.4).
        let pad = usize::from(plain.last().copied().unwrap_or(0));
        if !(1..=PAD_BLOCK).contains(&pad)
            || plain[plain.len() - pad..]
                .iter()
                .any(|&b| usize::from(b) != pad)
        {
            return Err(EventError::DecryptFailed);
        }
        let content = &plain[..plain.len() - pad];
        if content.len() < HEADER_LEN {
            return Err(EventError::BadPlaintext);
        }
        // The 16-byte random prefix is opaque: real senders put binary there (§10.3.3).
        let mut len = [0u8; 4];
        len.copy_from_slice(&content[16..HEADER_LEN]);
        let msg_end = usize::try_from(u32::from_be_bytes(len))
            .ok()
            .and_then(|n| n.checked_add(HEADER_LEN))
            .filter(|&end| end <= content.len())
            .ok_or(EventError::BadPlaintext)?;
        if &content[msg_end..] != self.receive_id.as_bytes() {
            return Err(EventError::ReceiveIdMismatch);
        }
        Ok(content[HEADER_LEN..msg_end].to_vec())
    }

    /// Encrypts `msg` as WeCom does (§10.3.7), padding to 32: for the simulator and tests.
    pub fn encrypt(&self, msg: &[u8], random: &[u8; 16]) -> String {
        let mut raw =
            Vec::with_capacity(msg.len() + self.receive_id.len() + HEADER_LEN + PAD_BLOCK);
        raw.extend_from_slice(random);
        // Events are at most a few KiB; a message beyond 4 GiB cannot be built in memory anyway.
        raw.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        raw.extend_from_slice(msg);
        raw.extend_from_slice(self.receive_id.as_bytes());
        let pad = PAD_BLOCK - raw.len() % PAD_BLOCK;
        // pad is 1..=32, so the cast is exact.
        raw.resize(raw.len() + pad, pad as u8);
        let mut blocks: Vec<Block> = raw.chunks_exact(16).map(Block::clone_from_slice).collect();
        cbc::Encryptor::<Aes256>::new(&self.key.into(), &self.iv().into())
            .encrypt_blocks_mut(&mut blocks);
        let cipher: Vec<u8> = blocks.iter().flatten().copied().collect();
        STANDARD.encode(cipher)
    }
}
