//! A second, independent mutating webhook for the reinvocation scenario: it
//! injects a sidecar container, as service meshes and log agents do, after
//! secure-defaults has run. Real HTTPS on loopback, real AdmissionReviews.

use crate::Tls;
use anyhow::Result;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::DynamicObject;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use tokio::net::TcpListener;

pub const SIDECAR: &str = "injected-sidecar";

pub struct Injector {
    pub port: u16,
    pub tls: Tls,
    task: tokio::task::JoinHandle<()>,
}

impl Injector {
    pub async fn start() -> Result<Injector> {
        let tls = Tls::for_loopback();
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, hyper::service::service_fn(handle))
                        .await;
                });
            }
        });
        Ok(Injector { port, tls, task })
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/inject", self.port)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let answer = match serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body) {
        Ok(review) => match TryInto::<AdmissionRequest<DynamicObject>>::try_into(review) {
            Ok(req) => inject(&req).into_review(),
            Err(e) => AdmissionResponse::invalid(e.to_string()).into_review(),
        },
        Err(e) => AdmissionResponse::invalid(e.to_string()).into_review(),
    };
    let bytes = serde_json::to_vec(&answer).unwrap_or_default();
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("static response"))
}

fn inject(req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let res = AdmissionResponse::from(req);
    let Some(pod) = &req.object else { return res };
    let containers = pod.data["spec"]["containers"].as_array();
    if containers.is_some_and(|cs| cs.iter().any(|c| c["name"] == SIDECAR)) {
        return res;
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([{
        "op": "add",
        "path": "/spec/containers/-",
        "value": {"name": SIDECAR, "image": "registry.example.com/sidecar:1"}
    }]))
    .expect("static patch");
    res.with_patch(patch)
        .unwrap_or_else(|e| AdmissionResponse::invalid(e.to_string()))
}
