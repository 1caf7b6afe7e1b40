//! Reading a pod spec from JSON with only the fields the engine looks at.
//!
//! Building a full `PodSpec` allocates every env var, command, volume mount
//! and resource of every container, and then the engine clones it: for a typical
//! pod that was most of the time a review took. The rules and the
//! `restricted` checks read a few fields; the reader below fills exactly
//! those into an ordinary `PodSpec` and skips the rest of the text without
//! allocating it. Containers keep their order and count, so patch paths are
//! the same as in the full spec.
//!
//! Keep [`Spec`] and [`Container`] in step with `rules.rs` and
//! `restricted.rs`: a field a rule starts to read must be listed here.
//! The engine tests and the property tests run each pod through both readers
//! and fail if the answers differ.
//!
//! The API server only sends objects it decoded, so the fields skipped here
//! are well formed; a value of the wrong type in a field that is read is an
//! error, as it is for the full `PodSpec`.

use k8s_openapi::api::core::v1::{
    self as core, Affinity, ContainerPort, EphemeralContainer, Lifecycle, PodOS, PodSecurityContext, PodSpec, Probe,
    SecurityContext, Volume, VolumeDevice,
};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Read a pod spec (the JSON of `spec` of a Pod, or of a pod template) into
/// a `PodSpec` that holds only what the engine reads.
pub fn read_spec(json: &str) -> serde_json::Result<PodSpec> {
    serde_json::from_str::<Spec>(json).map(PodSpec::from)
}

/// [`read_spec`] as a serde type, to read a spec while a larger document is
/// parsed (the admission layer reads a Pod's spec as it parses the review).
/// `null` reads as `None`.
pub struct SpecInput(pub Option<PodSpec>);

impl<'de> Deserialize<'de> for SpecInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<Spec>::deserialize(deserializer).map(|spec| SpecInput(spec.map(PodSpec::from)))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    containers: Option<Vec<Container>>,
    init_containers: Option<Vec<Container>>,
    ephemeral_containers: Option<Vec<Container>>,
    security_context: Option<PodSecurityContext>,
    os: Option<PodOS>,
    node_selector: Option<BTreeMap<String, String>>,
    affinity: Option<Box<Affinity>>,
    host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    host_ipc: Option<bool>,
    host_users: Option<bool>,
    volumes: Option<Vec<VolumeInput>>,
}

/// Boxed members: a container is moved as it is read and again into the
/// bindings' `Container` (2 KB), and most containers have few of these.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container {
    name: Option<String>,
    /// For `identity: auto`, which looks the image's user up by it.
    image: Option<String>,
    security_context: Option<Box<SecurityContext>>,
    ports: Option<Vec<ContainerPort>>,
    liveness_probe: Option<Box<Probe>>,
    readiness_probe: Option<Box<Probe>>,
    startup_probe: Option<Box<Probe>>,
    lifecycle: Option<Box<Lifecycle>>,
    volume_devices: Option<Vec<VolumeDevice>>,
}

impl From<Spec> for PodSpec {
    fn from(s: Spec) -> PodSpec {
        PodSpec {
            containers: s.containers.into_iter().flatten().map(core::Container::from).collect(),
            init_containers: s
                .init_containers
                .map(|cs| cs.into_iter().map(core::Container::from).collect()),
            ephemeral_containers: s
                .ephemeral_containers
                .map(|cs| cs.into_iter().map(EphemeralContainer::from).collect()),
            security_context: s.security_context,
            os: s.os,
            node_selector: s.node_selector,
            affinity: s.affinity.map(|b| *b),
            host_network: s.host_network,
            host_pid: s.host_pid,
            host_ipc: s.host_ipc,
            host_users: s.host_users,
            volumes: s.volumes.map(|vs| vs.into_iter().map(|v| v.0).collect()),
            ..PodSpec::default()
        }
    }
}

impl From<Container> for core::Container {
    fn from(c: Container) -> core::Container {
        core::Container {
            name: c.name.unwrap_or_default(),
            image: c.image,
            security_context: c.security_context.map(|b| *b),
            ports: c.ports,
            liveness_probe: c.liveness_probe.map(|b| *b),
            readiness_probe: c.readiness_probe.map(|b| *b),
            startup_probe: c.startup_probe.map(|b| *b),
            lifecycle: c.lifecycle.map(|b| *b),
            volume_devices: c.volume_devices,
            ..core::Container::default()
        }
    }
}

/// Ephemeral containers may not have probes or lifecycle handlers (the API
/// server refuses them), and the engine does not look at theirs.
impl From<Container> for EphemeralContainer {
    fn from(c: Container) -> EphemeralContainer {
        EphemeralContainer {
            name: c.name.unwrap_or_default(),
            image: c.image,
            security_context: c.security_context.map(|b| *b),
            ports: c.ports,
            volume_devices: c.volume_devices,
            ..EphemeralContainer::default()
        }
    }
}

/// A volume as the `restricted` checks read it: its name and which source
/// it has. The source's own fields are skipped (a projected volume's list of
/// sources, a ConfigMap's items, ...), and the `Volume` holds the source's
/// default value, so `volume.host_path.is_some()` and the like answer as for
/// the full volume.
struct VolumeInput(Volume);

/// Sets the named source of `$volume` to its default: `"hostPath" => host_path, ...`.
macro_rules! volume_sources {
    ($volume:ident, $key:ident, $($json:literal => $field:ident),+ $(,)?) => {
        match $key {
            $($json => $volume.$field = Some(Default::default()),)+
            _ => {}
        }
    };
}

impl<'de> Deserialize<'de> for VolumeInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VolumeInput;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a volume")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VolumeInput, A::Error> {
                let mut v = Volume::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "name" {
                        // As the bindings read it: absent or `null` is "".
                        v.name = map.next_value::<Option<String>>()?.unwrap_or_default();
                        continue;
                    }
                    // `null` is no source, as for the full volume.
                    if map.next_value::<Option<IgnoredAny>>()?.is_none() {
                        continue;
                    }
                    let key = key.as_ref();
                    volume_sources!(v, key,
                        "awsElasticBlockStore" => aws_elastic_block_store,
                        "azureDisk" => azure_disk,
                        "azureFile" => azure_file,
                        "cephfs" => cephfs,
                        "cinder" => cinder,
                        "configMap" => config_map,
                        "csi" => csi,
                        "downwardAPI" => downward_api,
                        "emptyDir" => empty_dir,
                        "ephemeral" => ephemeral,
                        "fc" => fc,
                        "flexVolume" => flex_volume,
                        "flocker" => flocker,
                        "gcePersistentDisk" => gce_persistent_disk,
                        "gitRepo" => git_repo,
                        "glusterfs" => glusterfs,
                        "hostPath" => host_path,
                        "image" => image,
                        "iscsi" => iscsi,
                        "nfs" => nfs,
                        "persistentVolumeClaim" => persistent_volume_claim,
                        "photonPersistentDisk" => photon_persistent_disk,
                        "portworxVolume" => portworx_volume,
                        "projected" => projected,
                        "quobyte" => quobyte,
                        "rbd" => rbd,
                        "scaleIO" => scale_io,
                        "secret" => secret,
                        "storageos" => storageos,
                        "vsphereVolume" => vsphere_volume,
                    );
                }
                Ok(VolumeInput(v))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_what_the_engine_does_not_read_and_keeps_container_positions() {
        let spec = read_spec(
            r#"{"initContainers": [{"name": "init", "env": [{"name": "A", "value": "1"}]}],
                "containers": [{"name": "a", "image": "x", "securityContext": {"privileged": true}},
                               {"name": "b", "ports": [{"containerPort": 80, "hostPort": 80}]}],
                "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "a"}],
                "hostPID": true, "serviceAccountName": "default", "unknownField": {"deep": [[[1]]]}}"#,
        )
        .unwrap();
        assert_eq!(spec.init_containers.as_ref().unwrap()[0].name, "init");
        assert_eq!(spec.init_containers.as_ref().unwrap()[0].env, None);
        assert_eq!(spec.containers.len(), 2);
        assert_eq!(spec.containers[0].image.as_deref(), Some("x"));
        assert_eq!(spec.containers[1].image, None);
        assert_eq!(
            spec.containers[0].security_context.as_ref().unwrap().privileged,
            Some(true)
        );
        assert_eq!(spec.containers[1].ports.as_ref().unwrap()[0].host_port, Some(80));
        assert_eq!(spec.ephemeral_containers.as_ref().unwrap()[0].name, "debug");
        assert_eq!(spec.host_pid, Some(true));
        assert_eq!(spec.service_account_name, None);
    }

    #[test]
    fn volumes_keep_their_name_and_which_source_they_have() {
        let json = r#"[
                {"name": "root", "hostPath": {"path": "/", "type": "Directory"}},
                {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {"name": "share", "nfs": {"server": "s", "path": "/"}, "futureField": [1]},
                {"name": "nothing", "hostPath": null},
                {"name": null, "emptyDir": {}},
                {"name": "old", "gitRepo": {"repository": "r"}, "secret": {"secretName": "s"}}]"#;
        let spec = read_spec(&format!(r#"{{"containers": [], "volumes": {json}}}"#)).unwrap();
        let volumes = spec.volumes.unwrap();
        // The same members as the bindings' full reading, source by source.
        let full: Vec<Volume> = serde_json::from_str(json).unwrap();
        let members = |v: &Volume| -> Vec<String> {
            let value = serde_json::to_value(v).unwrap();
            value.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(
            volumes.iter().map(members).collect::<Vec<_>>(),
            full.iter().map(members).collect::<Vec<_>>()
        );
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["root", "token", "share", "nothing", "", "old"]);
        assert!(volumes[0].host_path.is_some() && volumes[0].projected.is_none());
        assert!(volumes[1].projected.is_some());
        assert!(volumes[2].nfs.is_some() && volumes[2].host_path.is_none());
        assert_eq!(
            volumes[3],
            Volume {
                name: "nothing".into(),
                ..Volume::default()
            }
        );
    }

    #[test]
    fn a_wrong_type_in_a_field_it_reads_is_an_error() {
        assert!(read_spec(r#"{"containers": [{"name": "a", "securityContext": "root"}]}"#).is_err());
        assert!(read_spec(r#"{"hostPID": "yes"}"#).is_err());
        assert!(read_spec(r#"[]"#).is_err());
    }
}
