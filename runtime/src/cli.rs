//! Command-line flags shared by both binaries.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

use clap::{Args, Parser, ValueEnum};

/// Flags common to the controller and the speaker; each binary flattens them into its own flags
/// and sets the `--metrics-addr` default with [`parse_with_metrics_default`].
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// Where objects come from: `kube` (the Kubernetes API) or `dir:PATH` (a directory of YAML
    /// manifests, watched for changes; writes go to PATH/status/).
    #[arg(long, env = "OXELB_SOURCE", default_value = "kube", value_parser = SourceSpec::from_str)]
    pub source: SourceSpec,

    /// Log format.
    #[arg(long, env = "OXELB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter, an EnvFilter directive such as `info` or `info,oxelb_runtime=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info", value_parser = parse_log_level)]
    pub log_level: String,

    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(long, env = "OXELB_METRICS_ADDR")]
    pub metrics_addr: SocketAddr,

    /// For labs only: the `dir:` source delivers every change this many milliseconds late, so
    /// processes reading one directory see a change at different moments, as watches of a real
    /// apiserver do (skewed views). 0 (the default) delivers at once; ignored by `kube`.
    #[arg(long, env = "OXELB_DIR_DELAY_MS", default_value_t = 0, hide = true)]
    pub dir_delay_ms: u64,
}

/// Parses a binary's flags, with `default_metrics_addr` as the default of `--metrics-addr` (the
/// controller and the hostNetwork speaker need different ports). Exits with clap's message on bad
/// flags, `--help` and `--version`, like `Parser::parse`.
pub fn parse_with_metrics_default<A: Parser>(default_metrics_addr: &'static str) -> A {
    try_parse_from_with_metrics_default(std::env::args_os(), default_metrics_addr)
        .unwrap_or_else(|e| e.exit())
}

/// [`parse_with_metrics_default`] over given arguments, returning clap's error (for tests).
pub fn try_parse_from_with_metrics_default<A, I, T>(
    args: I,
    default_metrics_addr: &'static str,
) -> Result<A, clap::Error>
where
    A: Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut matches = A::command()
        .mut_arg("metrics_addr", |arg| {
            arg.default_value(default_metrics_addr).required(false)
        })
        .try_get_matches_from(args)?;
    A::from_arg_matches_mut(&mut matches)
}

/// The value of `--source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// The Kubernetes API (kubeconfig or in-cluster configuration).
    Kube,
    /// A directory of YAML manifests.
    Dir(PathBuf),
}

/// Why a `--source` value was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceSpecError {
    /// `dir:` without a path.
    #[error("`dir:` needs a path, e.g. `dir:/etc/oxelb/manifests`")]
    EmptyPath,
    /// Neither `kube` nor `dir:PATH`.
    #[error("unknown source `{0}`: expected `kube` or `dir:PATH`")]
    Unknown(String),
}

impl FromStr for SourceSpec {
    type Err = SourceSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("dir:") {
            Some("") => Err(SourceSpecError::EmptyPath),
            Some(path) => Ok(SourceSpec::Dir(PathBuf::from(path))),
            None if s == "kube" => Ok(SourceSpec::Kube),
            None => Err(SourceSpecError::Unknown(s.to_owned())),
        }
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Kube => f.write_str("kube"),
            SourceSpec::Dir(path) => write!(f, "dir:{}", path.display()),
        }
    }
}

/// The value of `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

fn parse_log_level(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a log filter directive: {e}"))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[derive(Parser, Debug)]
    #[command(name = "t")]
    struct TestArgs {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> Result<TestArgs, clap::Error> {
        let all = std::iter::once("t").chain(args.iter().copied());
        try_parse_from_with_metrics_default(all, "0.0.0.0:9641")
    }

    #[test]
    fn defaults() {
        // Environment variables could change the defaults; none of OXELB_* are set under cargo test.
        let args = parse(&["--log-level", "info"]).unwrap().common;
        assert_eq!(args.source, SourceSpec::Kube);
        assert_eq!(args.log_format, LogFormat::Text);
        assert_eq!(args.metrics_addr, "0.0.0.0:9641".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn dir_source_and_json() {
        let args = parse(&[
            "--source",
            "dir:/tmp/x",
            "--log-format",
            "json",
            "--metrics-addr",
            "127.0.0.1:1",
        ])
        .unwrap()
        .common;
        assert_eq!(args.source, SourceSpec::Dir(PathBuf::from("/tmp/x")));
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.metrics_addr.port(), 1);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (&["--source", "dir:"][..], "--source"),
            (&["--source", "etcd"][..], "--source"),
            (&["--log-format", "xml"][..], "--log-format"),
            (&["--metrics-addr", "nope"][..], "--metrics-addr"),
            (&["--log-level", "info,[=bad"][..], "--log-level"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn source_spec_round_trips() {
        for s in ["kube", "dir:/a/b"] {
            assert_eq!(s.parse::<SourceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("dir:".parse::<SourceSpec>(), Err(SourceSpecError::EmptyPath));
    }
}
