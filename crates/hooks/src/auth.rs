//! How a hook tells keyrotor's calls from anyone else's: the bearer tokens
//! of the rotation's `tokenSecretRef`, read from a file that may list
//! several (so a token is rotated with no gap), or keyrotor's own
//! ServiceAccount tokens (`serviceAccountToken`), checked with a
//! TokenReview. The flags are the same for every hook.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::Error;
use crate::token_review::Reviewer;

/// The flags that choose how a hook authenticates keyrotor.
#[derive(clap::Args, Debug, Clone)]
pub struct AuthArgs {
    /// File holding the bearer tokens keyrotor may send, one per line (the
    /// Secret named by the rotation's `tokenSecretRef`); read again when it
    /// changes, so a token is rotated by listing the new one beside the
    /// old. Or `--token-review-audience`.
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
    Tokens(TokenFile),
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
    /// The token file's tokens, or a TokenReview client for the audience.
    pub async fn new(args: &AuthArgs) -> Result<Auth, Error> {
        match (&args.token_file, &args.token_review_audience) {
            (Some(file), _) => Ok(Auth::Tokens(TokenFile::open(file)?)),
            (None, Some(audience)) => Ok(Auth::Review(Box::new(
                Reviewer::new(audience.clone(), &args.allow_service_account).await?,
            ))),
            (None, None) => Err(Error::NoAuth),
        }
    }

    /// Whether the `Authorization: Bearer` token `presented` is keyrotor's.
    pub async fn accepts(&self, presented: &str) -> bool {
        match self {
            Auth::Tokens(file) => file.accepts(presented),
            Auth::Review(reviewer) => !presented.is_empty() && reviewer.accepts(presented).await,
        }
    }
}

/// The tokens of `--token-file`, one per line (blank lines ignored), read
/// again whenever the file's modification time or length changes: a
/// mounted Secret that changes is a new file, so a new token is accepted
/// at once. A file that cannot be read or lists no token after a change
/// keeps the tokens read last (a half-written file must not lock keyrotor
/// out); at start it is an error.
pub struct TokenFile {
    path: PathBuf,
    read: Mutex<Read>,
}

/// The tokens as last read, and the file's stamp then.
struct Read {
    stamp: Option<(SystemTime, u64)>,
    tokens: Vec<Zeroizing<String>>,
}

impl TokenFile {
    pub fn open(path: &Path) -> Result<TokenFile, Error> {
        let stamp = stamp(path);
        let tokens = tokens(&secret_file(path)?);
        if tokens.is_empty() {
            return Err(Error::EmptyToken(path.to_path_buf()));
        }
        Ok(TokenFile {
            path: path.to_path_buf(),
            read: Mutex::new(Read { stamp, tokens }),
        })
    }

    /// Whether `presented` is one of the file's tokens, compared with each
    /// in constant time.
    pub fn accepts(&self, presented: &str) -> bool {
        let mut read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh(&mut read);
        read.tokens.iter().fold(false, |any, t| {
            same(presented.as_bytes(), t.as_bytes()) | any
        })
    }

    fn refresh(&self, read: &mut Read) {
        let now = stamp(&self.path);
        if now.is_none() || now == read.stamp {
            return;
        }
        match secret_file(&self.path).map(|s| tokens(&s)) {
            Ok(tokens) if !tokens.is_empty() => {
                info!(file = %self.path.display(), tokens = tokens.len(), "token file read again");
                *read = Read { stamp: now, tokens };
            }
            Ok(_) => {
                warn!(file = %self.path.display(), "token file lists no token; keeping the tokens read last")
            }
            Err(e) => warn!(error = %e, "keeping the tokens read last"),
        }
    }
}

/// The file's modification time and length, if it can be read.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The tokens listed in `text`, one per line.
fn tokens(text: &str) -> Vec<Zeroizing<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Zeroizing::new(l.to_string()))
        .collect()
}

/// Constant-time comparison of the presented token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token file in a fresh directory; removed with the directory.
    struct File {
        dir: PathBuf,
        path: PathBuf,
    }

    impl File {
        fn new(name: &str, content: &str) -> File {
            let dir =
                std::env::temp_dir().join(format!("keyrotor-token-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = File {
                path: dir.join("token"),
                dir,
            };
            file.write(content, 0);
            file
        }

        /// Writes `content` with a modification time `seconds` after a
        /// fixed one: a change is seen whatever the clock's resolution.
        fn write(&self, content: &str, seconds: u64) {
            std::fs::write(&self.path, content).unwrap();
            let at =
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + seconds);
            let f = std::fs::File::options()
                .write(true)
                .open(&self.path)
                .unwrap();
            f.set_modified(at).unwrap();
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn only_a_token_listed_in_the_file_is_accepted() {
        let file = File::new("one", "hook-token-123\n");
        let tokens = TokenFile::open(&file.path).unwrap();
        assert!(tokens.accepts("hook-token-123"));
        assert!(!tokens.accepts("hook-token-124"));
        assert!(!tokens.accepts("hook-token-1234"));
        assert!(!tokens.accepts("hook-token-12"));
        assert!(!tokens.accepts(""));
    }

    #[test]
    fn a_token_is_rotated_without_a_gap_by_listing_the_new_one_beside_the_old() {
        let file = File::new("rotate", "old-token-aaaa\n");
        let tokens = TokenFile::open(&file.path).unwrap();
        assert!(tokens.accepts("old-token-aaaa"));
        assert!(!tokens.accepts("new-token-bbbb"));
        // 1. the new token beside the old: both work.
        file.write("old-token-aaaa\n\n  new-token-bbbb  \n", 1);
        assert!(tokens.accepts("old-token-aaaa"));
        assert!(tokens.accepts("new-token-bbbb"));
        // 2. (keyrotor's token Secret now holds the new one) 3. the old goes.
        file.write("new-token-bbbb\n", 2);
        assert!(!tokens.accepts("old-token-aaaa"));
        assert!(tokens.accepts("new-token-bbbb"));
    }

    #[test]
    fn a_file_emptied_or_gone_keeps_the_tokens_read_last_and_an_empty_one_does_not_start() {
        let file = File::new("empty", "kept-token-cccc\n");
        let tokens = TokenFile::open(&file.path).unwrap();
        file.write("\n", 1);
        assert!(tokens.accepts("kept-token-cccc"), "a half-written file");
        std::fs::remove_file(&file.path).unwrap();
        assert!(tokens.accepts("kept-token-cccc"), "a file being replaced");
        file.write(" \n", 2);
        let said = TokenFile::open(&file.path).err().unwrap().to_string();
        assert_eq!(said, format!("{} is empty", file.path.display()));
    }
}
