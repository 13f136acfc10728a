//! A TCP proxy that can freeze: it stops forwarding in both directions without closing anything,
//! as a half-open connection, an overloaded apiserver or a stuck proxy does to a watch. Labs put
//! one in front of the in-memory API ([`crate::apiserver`]) for each process whose view must be
//! able to stop, listening inside that process's network namespace.
//!
//! While frozen, bytes already read are held, nothing more is read (the kernel's buffers fill and
//! the sender's writes block), and new connections are accepted but not forwarded. Released,
//! everything resumes where it stopped: the client sees a long pause, never an error.

use std::{net::SocketAddr, os::fd::AsFd, sync::Arc};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// A running proxy; dropping it does not stop it (it lives as long as the runtime).
#[derive(Clone, Debug)]
pub struct FreezeProxy {
    addr: SocketAddr,
    frozen: Arc<watch::Sender<bool>>,
}

impl FreezeProxy {
    /// Listens on `listen` inside the network namespace `netns` (a name under `/run/netns`, as
    /// `ip netns add` makes) and forwards each connection to `upstream`, which is reached from
    /// the calling process's own namespace. Must be called inside a tokio runtime.
    pub fn start_in_netns(netns: &str, listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Self> {
        let path = format!("/run/netns/{netns}");
        // A thread of its own enters the namespace: the socket it makes stays there, the rest of
        // the process stays where it is.
        let listener = std::thread::spawn(move || -> std::io::Result<std::net::TcpListener> {
            let file = std::fs::File::open(&path)?;
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            let listener = std::net::TcpListener::bind(listen)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))??;
        Self::serve(listener, upstream)
    }

    /// Listens on a free loopback port of the calling process's own namespace and forwards
    /// each connection to `upstream`. Must be called inside a tokio runtime.
    pub fn start_here(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        Self::serve(listener, upstream)
    }

    fn serve(listener: std::net::TcpListener, upstream: SocketAddr) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let listener = TcpListener::from_std(listener)?;
        let frozen = Arc::new(watch::Sender::new(false));
        let gate = frozen.subscribe();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let _ = forward(client, upstream, gate).await;
                });
            }
        });
        Ok(Self { addr, frozen })
    }

    /// Where it listens (inside its namespace).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops forwarding, closing nothing.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Resumes forwarding.
    pub fn release(&self) {
        self.frozen.send_replace(false);
    }

    /// A kubeconfig for a process in the proxy's namespace.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: lab, cluster: {{server: \"http://{}\"}}}}]\nusers: [{{name: lab, user: {{}}}}]\ncontexts: [{{name: lab, context: {{cluster: lab, user: lab, namespace: default}}}}]\ncurrent-context: lab\n",
            self.addr
        )
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    mut gate: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // A connection made while frozen waits, accepted, for the release.
    let _ = gate.wait_for(|frozen| !*frozen).await;
    let server = TcpStream::connect(upstream).await?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pipe(client_read, server_write, gate.clone());
    let down = pipe(server_read, client_write, gate);
    let _ = tokio::join!(up, down);
    Ok(())
}

/// Copies `from` to `to` while not frozen; a read in flight when the freeze comes is held until
/// the release.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if gate.wait_for(|frozen| !*frozen).await.is_err() {
            return Ok(());
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => read?,
            _ = gate.wait_for(|frozen| *frozen) => continue,
        };
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        if gate.wait_for(|frozen| !*frozen).await.is_err() {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}
