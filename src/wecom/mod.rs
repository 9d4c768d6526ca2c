//! The WeCom API client (the only user of reqwest): token cache, errcodes, member profiles.
