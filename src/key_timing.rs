//! How often signing keys reach every replica and how long relying parties may cache them: the
//! timing `keys` runs on and from which `config` derives the default `KEY_ACTIVATION_DELAY_SECS`.
//! A leaf below `config`: constants only.

use std::time::Duration;

/// How long relying parties and proxies may cache the JWKS (`Cache-Control: max-age`), at most.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);

/// How often each replica re-reads the signing keys (a rotation elsewhere reaches it this fast).
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
