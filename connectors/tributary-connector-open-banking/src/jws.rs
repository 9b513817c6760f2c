//! Signed request objects (JWS compact serialization), and the random
//! values of the flow (PKCE verifier, nonce, interaction ids).
//!
//! The key is a PKCS#8 private key in PEM: RSA signs with PS256, EC P-256
//! with ES256, the two algorithms the Open Banking security profile (FAPI)
//! allows.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PSS_SHA256, RsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A signing key with its key id (`kid`, as registered with the banks).
pub struct Signer {
    key: Key,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} {})", self.alg(), self.kid)
    }
}

impl Signer {
    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str, kid: &str) -> Result<Signer, String> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("-----"))
            .collect();
        if !pem.contains("BEGIN PRIVATE KEY") {
            return Err("the signing key must be a PKCS#8 PEM (BEGIN PRIVATE KEY)".into());
        }
        let der = STANDARD
            .decode(body)
            .map_err(|e| format!("the signing key is not valid PEM: {e}"))?;
        let rng = SystemRandom::new();
        let key = match RsaKeyPair::from_pkcs8(&der) {
            Ok(rsa) => Key::Rsa(rsa),
            Err(_) => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                .map(Key::Ec)
                .map_err(|_| "the signing key is neither RSA nor EC P-256".to_string())?,
        };
        Ok(Signer {
            key,
            kid: kid.to_string(),
            rng,
        })
    }

    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "PS256",
            Key::Ec(_) => "ES256",
        }
    }

    /// `claims` signed: `header.payload.signature`, each base64url.
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({ "alg": self.alg(), "kid": self.kid, "typ": "oauth-authz-req+jwt" });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &self.key {
            Key::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PSS_SHA256, &self.rng, input.as_bytes(), &mut signature)
                    .map_err(|_| "cannot sign the request object".to_string())?;
                signature
            }
            Key::Ec(key) => key
                .sign(&self.rng, input.as_bytes())
                .map_err(|_| "cannot sign the request object".to_string())?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// `n` random bytes, base64url: PKCE verifiers (32 bytes give 43
/// characters), nonces.
pub fn random_token(n: usize) -> Result<String, String> {
    let mut bytes = vec![0; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no randomness available".to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The PKCE `S256` challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A random UUID (version 4) for `x-fapi-interaction-id`.
pub fn interaction_id() -> String {
    let mut b = [0u8; 16];
    // Without randomness the id is still unique enough to trace a call.
    if SystemRandom::new().fill(&mut b).is_err() {
        b = u128::from(std::process::id()).to_be_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn es256_request_objects_verify_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let signer = Signer::from_pem(&pem, "kid-1").unwrap();
        assert_eq!(signer.alg(), "ES256");
        let jwt = signer.sign(&json!({ "state": "s" })).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], "kid-1");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        use ring::signature::KeyPair;
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert!(public.verify(signed.as_bytes(), &signature).is_ok());
        assert!(public.verify(b"tampered", &signature).is_err());
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(
            Signer::from_pem("nope", "k")
                .unwrap_err()
                .contains("PKCS#8")
        );
        let e = Signer::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "k",
        )
        .unwrap_err();
        assert!(e.contains("neither RSA nor EC"), "{e}");
    }

    #[test]
    fn pkce_and_ids_have_their_shapes() {
        let v = random_token(32).unwrap();
        assert_eq!(v.len(), 43);
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let id = interaction_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
