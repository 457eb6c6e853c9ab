// Local S3 server for mediagate's tests and benches.
//
// Copied from s3s-fs 0.14.1's src/main.rs (https://github.com/Nugine/s3s, Apache-2.0,
// Copyright the s3s authors); the library part is `s3s_fs::FileSystem`, used unchanged.
//
// Changed: each accepted connection gets TCP_NODELAY (`socket.set_nodelay(true)`).
// Why: without it, a GetObject response on a reused keep-alive connection (headers, then
// the body in a second write) waits ~40 ms for the client's delayed ACK (Nagle + delayed
// ACK), which dominated our pipeline benchmark. Real S3/MinIO (Go) set TCP_NODELAY.
//
// Added: `--user ACCESS_KEY:SECRET_KEY:POLICY_FILE` (repeatable), users beside the root
// credentials, each limited by an IAM-style policy document (src/policy.rs), so that mediagate
// can be run with the least privileges contract §6 lists; `--check-policy FILE` loads a policy,
// prints what it grants and exits. Root (`--access-key`) may do everything, as MinIO's root user.

mod policy;

use s3s_fs::FileSystem;
use s3s_fs::Result;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{Credentials, SimpleAuth};
use s3s::dto::{CopyObjectInput, CopySource, DeleteObjectsInput};
use s3s::host::MultiDomain;
use s3s::service::S3ServiceBuilder;
use s3s::{S3Request, S3Result, s3_error};

use std::io::IsTerminal;
use std::ops::Not;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use clap::{CommandFactory, Parser};
use tracing::info;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

#[derive(Debug, Parser)]
#[command(version)]
struct Opt {
    /// Host name to listen on.
    #[arg(long, default_value = "localhost")]
    host: String,

    /// Port number to listen on.
    #[arg(long, default_value = "8014")] // The original design was finished on 2020-08-14.
    port: u16,

    /// Access key used for authentication.
    #[arg(long)]
    access_key: Option<String>,

    /// Secret key used for authentication.
    #[arg(long)]
    secret_key: Option<String>,

    /// Domain names used for virtual-hosted-style requests.
    #[arg(long)]
    domain: Vec<String>,

    /// A user limited by an IAM-style policy: ACCESS_KEY:SECRET_KEY:POLICY_FILE (repeatable;
    /// needs --access-key, the root user).
    #[arg(long)]
    user: Vec<String>,

    /// Load a policy document, print what it grants and exit (0 when it loads).
    #[arg(long, value_name = "FILE")]
    check_policy: Option<PathBuf>,

    /// Root directory of stored data.
    #[arg(required_unless_present = "check_policy")]
    root: Option<PathBuf>,
}

/// Root may do everything; a user what its policy allows; anyone else nothing.
struct Access {
    root: String,
    users: Arc<policy::Users>,
}

impl Access {
    /// The policy that limits these credentials; `None` for root.
    fn policy_of(&self, creds: Option<&Credentials>) -> S3Result<Option<&policy::Policy>> {
        let Some(creds) = creds else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        if creds.access_key == self.root {
            return Ok(None);
        }
        match self.users.by_key.get(&creds.access_key) {
            Some((_, p)) => Ok(Some(p)),
            None => Err(s3_error!(AccessDenied, "unknown access key")),
        }
    }
}

fn require(policy: &policy::Policy, action: &str, resource: &str) -> S3Result<()> {
    if policy.allows(action, resource) {
        Ok(())
    } else {
        // Always on stderr (whatever RUST_LOG says): a test reads the log to see what was denied.
        eprintln!("access denied by policy: {action} on {resource}");
        Err(s3_error!(AccessDenied, "the policy does not allow {action} on {resource}"))
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(policy) = self.policy_of(cx.credentials())? else {
            return Ok(());
        };
        let op = cx.s3_op().name();
        // DeleteObjects is authorized key by key, in `delete_objects` below.
        if op == "DeleteObjects" {
            return Ok(());
        }
        let Some((action, on_bucket)) = policy::action_of(op) else {
            eprintln!("access denied by policy: {op} is not mapped to an action");
            return Err(s3_error!(AccessDenied, "{op} is not granted to users by this server"));
        };
        let resource = match (cx.s3_path().as_object(), cx.s3_path().get_bucket_name()) {
            (Some((bucket, _)), _) if on_bucket => policy::bucket_arn(bucket),
            (Some((bucket, key)), _) => policy::object_arn(bucket, key),
            (None, Some(bucket)) => policy::bucket_arn(bucket),
            (None, None) => "arn:aws:s3:::*".to_string(),
        };
        require(policy, action, &resource)
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let Some(policy) = self.policy_of(req.credentials.as_ref())? else {
            return Ok(());
        };
        match &req.input.copy_source {
            CopySource::Bucket { bucket, key, .. } => require(policy, "s3:GetObject", &policy::object_arn(bucket, key)),
            _ => Err(s3_error!(AccessDenied, "copy sources other than bucket/key are not granted to users")),
        }
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let Some(policy) = self.policy_of(req.credentials.as_ref())? else {
            return Ok(());
        };
        for object in &req.input.delete.objects {
            require(policy, "s3:DeleteObject", &policy::object_arn(&req.input.bucket, &object.key))?;
        }
        Ok(())
    }
}

fn setup_tracing() {
    use tracing_subscriber::EnvFilter;

    let env_filter = EnvFilter::from_default_env();
    let enable_color = std::io::stdout().is_terminal();

    tracing_subscriber::fmt().pretty().with_env_filter(env_filter).with_ansi(enable_color).init();
}

fn check_cli_args(opt: &Opt) {
    use clap::error::ErrorKind;

    let mut cmd = Opt::command();

    // TODO: how to specify the requirements with clap derive API?
    if let (Some(_), None) | (None, Some(_)) = (&opt.access_key, &opt.secret_key) {
        let msg = "access key and secret key must be specified together";
        cmd.error(ErrorKind::MissingRequiredArgument, msg).exit();
    }
    if !opt.user.is_empty() && opt.access_key.is_none() {
        let msg = "--user needs the root user's --access-key and --secret-key";
        cmd.error(ErrorKind::MissingRequiredArgument, msg).exit();
    }

    for s in &opt.domain {
        if s.contains('/') {
            let msg = format!("expected domain name, found URL-like string: {s:?}");
            cmd.error(ErrorKind::InvalidValue, msg).exit();
        }
    }
}

fn main() -> Result {
    let opt = Opt::parse();
    check_cli_args(&opt);
    if let Some(file) = &opt.check_policy {
        match policy::Policy::load(file) {
            Ok(p) => {
                for st in &p.statements {
                    println!("{:?} {} on {}", st.effect, st.actions.join(", "), st.resources.join(", "));
                }
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }

    setup_tracing();

    run(opt)
}

#[tokio::main]
async fn run(opt: Opt) -> Result {
    // Setup S3 provider
    let mut users = policy::Users::default();
    for spec in &opt.user {
        if let Err(e) = users.add(spec) {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
    let fs = FileSystem::new(opt.root.clone().unwrap_or_default())?;

    // Setup S3 service
    let service = {
        let mut b = S3ServiceBuilder::new(fs);

        // Enable authentication
        if let (Some(ak), Some(sk)) = (opt.access_key, opt.secret_key) {
            let mut auth = SimpleAuth::from_single(ak.clone(), sk);
            for (user_key, (user_secret, _)) in &users.by_key {
                auth.register(user_key.clone(), user_secret.clone().into());
            }
            b.set_auth(auth);
            b.set_access(Access { root: ak, users: Arc::new(users.clone()) });
            info!(users = users.by_key.len(), "authentication is enabled");
        }

        // Enable parsing virtual-hosted-style requests
        if opt.domain.is_empty().not() {
            b.set_host(MultiDomain::new(&opt.domain)?);
            info!("virtual-hosted-style requests are enabled");
        }

        b.build()
    };

    // Run server
    let listener = TcpListener::bind((opt.host.as_str(), opt.port)).await?;
    let local_addr = listener.local_addr()?;

    let http_server = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();

    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());

    info!("server is running at http://{local_addr}");

    loop {
        let (socket, _) = tokio::select! {
            res =  listener.accept() => {
                match res {
                    Ok(conn) => conn,
                    Err(err) => {
                        tracing::error!("error accepting connection: {err}");
                        continue;
                    }
                }
            }
            _ = ctrl_c.as_mut() => {
                break;
            }
        };

        if let Err(err) = socket.set_nodelay(true) {
            tracing::warn!("failed to set TCP_NODELAY: {err}");
        }

        let conn = http_server.serve_connection(TokioIo::new(socket), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }

    tokio::select! {
        () = graceful.shutdown() => {
             tracing::debug!("Gracefully shutdown!");
        },
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
             tracing::debug!("Waited 10 seconds for graceful shutdown, aborting...");
        }
    }

    info!("server is stopped");
    Ok(())
}
