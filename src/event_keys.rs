//! The formats of WeCom's event callback settings, the Token and the EncodingAESKey (§10.3 of
//! `wecom-events.md`): checked by `config` at start-up and used by `wecom::events` to key the
//! cipher. A leaf below `config`: no crate imports, no I/O.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// 43 base64 characters carry 258 bits, so the last one has 2 bits to spare, and real keys often
/// set them. The `STANDARD` engine refuses such keys (`InvalidLastSymbol`); WeCom's own samples
/// decode leniently (§10.3.1).
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Checks a callback Token: "英文或数字组成且长度不超过32位" \[D90930\].
pub fn check_token(token: &str) -> Result<(), &'static str> {
    if token.is_empty() || token.len() > 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("expected 1 to 32 letters or digits");
    }
    Ok(())
}

/// Checks an EncodingAESKey (43 characters of `[A-Za-z0-9]` \[D90968\]) and returns the 32-byte
/// AES key `Base64_Decode(EncodingAESKey + "=")`.
pub fn decode_aes_key(encoding_aes_key: &str) -> Result<[u8; 32], &'static str> {
    const PROBLEM: &str = "expected exactly 43 letters or digits";
    if encoding_aes_key.len() != 43 || !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(PROBLEM);
    }
    let bytes = KEY_ENGINE
        .decode(format!("{encoding_aes_key}="))
        .map_err(|_| PROBLEM)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| PROBLEM)
}
