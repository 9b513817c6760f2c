//! Signing the Standard Webhooks way (<https://www.standardwebhooks.com>).
//!
//! A secret is `whsec_` then the base64 of its key bytes. Each request
//! carries `webhook-id` (the message id: the same on every retry and
//! replay, so receivers deduplicate by it), `webhook-timestamp` (the
//! attempt's Unix time in seconds) and `webhook-signature`: `v1,` then the
//! base64 HMAC-SHA256, under the key, of `{id}.{timestamp}.{body}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

const PREFIX: &str = "whsec_";

/// Bytes of key in a new secret.
const KEY_BYTES: usize = 32;

/// A signing secret, never printed.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook signing secret is \"whsec_\" then base64 of 24 to 64 bytes")]
pub struct BadSecret;

impl SigningSecret {
    /// A new random secret.
    pub fn generate() -> SigningSecret {
        use ring::rand::SecureRandom;
        let mut key = vec![0u8; KEY_BYTES];
        // The system's random source does not fail on Linux once booted.
        let _ = ring::rand::SystemRandom::new().fill(&mut key);
        SigningSecret(key)
    }

    /// Reads `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<SigningSecret, BadSecret> {
        let key = STANDARD
            .decode(text.trim().strip_prefix(PREFIX).ok_or(BadSecret)?)
            .map_err(|_| BadSecret)?;
        if (24..=64).contains(&key.len()) {
            Ok(SigningSecret(key))
        } else {
            Err(BadSecret)
        }
    }

    /// `whsec_<base64>`: what the subscriber is shown once.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The `webhook-signature` header value of a message.
    pub fn sign(&self, message_id: &str, timestamp_secs: i64, body: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let content = format!("{message_id}.{timestamp_secs}.{body}");
        let tag = hmac::sign(&key, content.as_bytes());
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        // The example in the Standard Webhooks specification.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = SigningSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"), "{text}");
        let again = SigningSecret::parse(&text).unwrap();
        assert_eq!(again.sign("m", 1, "b"), secret.sign("m", 1, "b"));
        assert!(!format!("{secret:?}").contains(&text[6..]));
        for bad in [
            "",
            "whsec_",
            "whsec_!!!",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_AAAA",
        ] {
            assert_eq!(SigningSecret::parse(bad).unwrap_err(), BadSecret, "{bad:?}");
        }
    }
}
