//! How a hook tells keyrotor's calls from anyone else's: the bearer token
//! of the rotation's `tokenSecretRef`, read from a file, or keyrotor's own
//! ServiceAccount tokens (`serviceAccountToken`), checked with a
//! TokenReview. The flags are the same for every hook.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::Error;
use crate::token_review::Reviewer;

/// The flags that choose how a hook authenticates keyrotor.
#[derive(clap::Args, Debug, Clone)]
pub struct AuthArgs {
    /// File holding the bearer token keyrotor must send (the Secret named by
    /// the rotation's `tokenSecretRef`). Or `--token-review-audience`.
    #[arg(
        long,
        env = "KEYROTOR_HOOK_TOKEN_FILE",
        required_unless_present = "token_review_audience"
    )]
    pub token_file: Option<PathBuf>,
    /// Accept keyrotor's ServiceAccount tokens of this audience instead
    /// (`serviceAccountToken.audience`), checked with a TokenReview.
    #[arg(
        long,
        env = "KEYROTOR_HOOK_TOKEN_AUDIENCE",
        conflicts_with = "token_file"
    )]
    pub token_review_audience: Option<String>,
    /// NAMESPACE/NAME of a ServiceAccount whose tokens are accepted (repeat
    /// for several); with `--token-review-audience`.
    #[arg(
        long,
        env = "KEYROTOR_HOOK_ALLOW_SERVICE_ACCOUNT",
        value_delimiter = ','
    )]
    pub allow_service_account: Vec<String>,
}

/// How the hook tells keyrotor's calls from anyone else's.
pub enum Auth {
    Token(Zeroizing<String>),
    Review(Box<Reviewer>),
}

/// A secret held in a file (a mounted Secret), trimmed, in a buffer wiped
/// when dropped. The error names the file, never its content.
pub fn secret_file(path: &Path) -> Result<Zeroizing<String>, Error> {
    std::fs::read_to_string(path)
        .map(|s| Zeroizing::new(s.trim().to_string()))
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
}

impl Auth {
    /// The token file's token, or a TokenReview client for the audience.
    pub async fn new(args: &AuthArgs) -> Result<Auth, Error> {
        match (&args.token_file, &args.token_review_audience) {
            (Some(file), _) => {
                let token = secret_file(file)?;
                if token.is_empty() {
                    return Err(Error::EmptyToken(file.clone()));
                }
                Ok(Auth::Token(token))
            }
            (None, Some(audience)) => Ok(Auth::Review(Box::new(
                Reviewer::new(audience.clone(), &args.allow_service_account).await?,
            ))),
            (None, None) => Err(Error::NoAuth),
        }
    }

    /// Whether the `Authorization: Bearer` token `presented` is keyrotor's.
    pub async fn accepts(&self, presented: &str) -> bool {
        match self {
            Auth::Token(token) => same(presented.as_bytes(), token.as_bytes()),
            Auth::Review(reviewer) => !presented.is_empty() && reviewer.accepts(presented).await,
        }
    }
}

/// Constant-time comparison of the presented token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_token_in_the_file_is_accepted() {
        let auth = Auth::Token(Zeroizing::new("hook-token-123".into()));
        assert!(auth.accepts("hook-token-123").await);
        assert!(!auth.accepts("hook-token-124").await);
        assert!(!auth.accepts("hook-token-1234").await);
        assert!(!auth.accepts("").await);
    }
}
