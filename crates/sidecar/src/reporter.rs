//! `keyrotor-sidecar reporter` (also `keyrotor reporter`): the sidecar's
//! command line over the reporter loop of [`keyrotor_consumer::reporter`]
//! (kept here so the consumer crate needs no CLI parser).

use std::path::PathBuf;
use std::time::Duration;

use keyrotor_consumer::reporter::Timing;

use crate::logging::LogFormat;

/// Command-line arguments of the reporter sidecar.
#[derive(clap::Args, Debug, Clone)]
pub struct ReporterArgs {
    /// A mounted projected-Secret directory (repeat for several).
    #[arg(
        long = "dir",
        required = true,
        env = "KEYROTOR_DIRS",
        value_delimiter = ','
    )]
    pub dirs: Vec<PathBuf>,
    /// Seconds between checks of the `..data` links.
    #[arg(long, default_value_t = 2)]
    pub poll_seconds: u64,
    /// Seconds between full checks of the pod's annotations (repairs lost ones).
    #[arg(long, default_value_t = 60)]
    pub resync_seconds: u64,
    /// Upper bound of the retry backoff, in seconds.
    #[arg(long, default_value_t = 60)]
    pub max_backoff_seconds: u64,
    /// The handshake directory an app's keyrotor library writes to (an
    /// `emptyDir` both containers mount): report what the library says
    /// its process loaded, never what the volumes hold
    /// (docs/wire.md#the-handshake-directory). Without it, the volumes'
    /// revisions are reported: right only for apps that read the files on
    /// every use.
    #[arg(long, env = "KEYROTOR_HANDSHAKE_DIR")]
    pub handshake: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "KEYROTOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Runs the sidecar until SIGTERM or Ctrl-C.
pub async fn main(args: ReporterArgs) -> Result<(), keyrotor_consumer::reporter::Error> {
    let timing = Timing {
        poll: Duration::from_secs(args.poll_seconds.max(1)),
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        max_backoff: Duration::from_secs(args.max_backoff_seconds.max(1)),
        ..Timing::default()
    };
    keyrotor_consumer::reporter::main(args.dirs, timing, args.handshake).await
}
