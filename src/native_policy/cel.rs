//! The engine's rules (`crates/engine/src/rules.rs`) transcribed into CEL, one function
//! per baseline field. [`field`] matches on [`Field`] with no wildcard: a new
//! engine field does not compile until it has its policy counterpart here.
//!
//! Conventions of the generated CEL:
//! - `c` is the container being hardened; the pod is `object`.
//! - A field's rule yields a list of `[subpath, value]` pairs: the members of
//!   the securityContext (container or pod) to add. The mutation turns them
//!   into JSONPatch `add` ops, adding `securityContext: {}` first when absent.
//!   Both halves are `dyn(...)`: CEL list literals must be homogeneous, and
//!   the JSONPatch type exists only in the mutation, not in variables.
//!   Every pair is decided on absence only: RFC 6902 `add` replaces a member.
//! - Values a namespace may change are CEL variables (`variables.runAsUser`,
//!   0 meaning "not added"); the rest are literals.

use super::PolicyError;
use crate::config::Config;
use crate::engine::baseline::IdentityMode;
use crate::engine::{Check, Field};
use k8s_openapi::api::core::v1::WindowsSecurityContextOptions;
use std::fmt::Write as _;

/// Annotation keys the engine reads (`crates/engine/src/annotations.rs`, `src/policy/namespace.rs`).
/// Repeated here as literals for the CEL; the e2e equality test keeps them in step.
pub const SKIP: &str = "secure-defaults.io/skip";
pub const SKIP_FIELDS: &str = "secure-defaults.io/skip-fields";
const MIRROR: &str = "kubernetes.io/config.mirror";
const SECCOMP_POD: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
const APPARMOR_CONTAINER_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Where a field's additions go.
pub enum Rule {
    /// Not added with this configuration, in any namespace.
    Off,
    /// Pairs for `spec.securityContext` (pod-level fields are never added on
    /// an ephemeral-container update; the expression checks that itself).
    Pod(String),
    /// Pairs for container `c`'s securityContext.
    Container(String),
    /// Pairs for `spec` itself (hostUsers, a pod-level decision).
    Spec(String),
    /// Pairs at both levels (seccompProfile: pod level, or per container).
    Both { pod: String, container: String },
    /// Added by the rule of the field named (fsGroupChangePolicy only beside fsGroup).
    #[allow(dead_code)] // read in tests and by readers: which rule covers it
    Within(Field),
}

/// A named CEL variable of the policy.
pub struct Variable {
    pub name: &'static str,
    pub expression: String,
}

/// Config-derived facts the rules share.
pub struct Env<'a> {
    pub config: &'a Config,
}

impl Env<'_> {
    /// `true` unless the pod opted out of `field` (and opt-outs are honoured).
    fn not_skipped(&self, field: Field) -> String {
        if self.config.allow_pod_opt_out {
            format!("!('{}' in variables.skipFields)", field.as_str())
        } else {
            "true".to_string()
        }
    }
}

/// The policy counterpart of one engine rule.
pub fn field(env: &Env, f: Field) -> Result<Rule, PolicyError> {
    let b = &env.config.baseline;
    let skip = env.not_skipped(f);
    Ok(match f {
        Field::RunAsNonRoot => match b.run_as_non_root {
            false => Rule::Off,
            true => Rule::Container(identity("runAsNonRoot", "true", &skip, "true")),
        },
        // ImageUser: `runAsNonRoot: true` without a user runs the image's own user.
        Field::RunAsUser => id_rule(
            env,
            f,
            b.run_as_user.is_some(),
            "runAsUser",
            &skip,
            &format!("!{NON_ROOT_TRUE}"),
        ),
        // PinnedUser too: a pinned user keeps the image's group for it.
        Field::RunAsGroup => id_rule(
            env,
            f,
            b.run_as_group.is_some(),
            "runAsGroup",
            &skip,
            &format!("!{NON_ROOT_TRUE} && {USER} == -1"),
        ),
        // A user namespace instead of IDs, decided for the whole pod (`variables.hostUsersAdd`).
        Field::HostUsers => {
            if b.identity == IdentityMode::Uid && !env.config.namespace_policy.allow_overrides {
                Rule::Off
            } else {
                Rule::Spec("variables.hostUsersAdd ? [[dyn('hostUsers'), dyn(false)]] : []".into())
            }
        }
        Field::FsGroup => {
            if b.fs_group.is_none() && !env.config.namespace_policy.allow_overrides {
                Rule::Off
            } else {
                let change_policy = match b.fs_group_change_policy {
                    Some(p) => format!(
                        " + ({} && !object.spec.?securityContext.?fsGroupChangePolicy.hasValue() \
                         ? [[dyn('fsGroupChangePolicy'), dyn('{}')]] : [])",
                        env.not_skipped(Field::FsGroupChangePolicy),
                        p.as_str()
                    ),
                    None => String::new(),
                };
                // PinnedUser: a pod that pins a non-root user chose who owns its data.
                let pinned = if b.fs_group_beside_run_as_user {
                    String::new()
                } else {
                    format!(
                        " && object.spec.?securityContext.?runAsUser.orValue(0) == 0 \
                         && !({ALL_CONTAINERS}).exists(c, c.?securityContext.?runAsUser.orValue(0) != 0)"
                    )
                };
                Rule::Pod(format!(
                    "variables.podLevel && variables.fsGroup > 0 && {skip}{pinned} \
                     && !object.spec.?securityContext.?fsGroup.hasValue() \
                     ? [[dyn('fsGroup'), dyn(variables.fsGroup)]]{change_policy} : []"
                ))
            }
        }
        Field::FsGroupChangePolicy => Rule::Within(Field::FsGroup),
        Field::SupplementalGroups => {
            if b.supplemental_groups.is_empty() {
                Rule::Off
            } else {
                let groups: Vec<String> = b.supplemental_groups.iter().map(i64::to_string).collect();
                Rule::Pod(format!(
                    "variables.podLevel && {skip} && !object.spec.?securityContext.?supplementalGroups.hasValue() \
                     ? [[dyn('supplementalGroups'), dyn([{}])]] : []",
                    groups.join(", ")
                ))
            }
        }
        Field::SeccompProfile => match b.seccomp_profile {
            None => Rule::Off,
            Some(p) => {
                let value = format!("{{'type': '{}'}}", p.as_str());
                Rule::Both {
                    pod: format!("variables.seccompAtPod ? [[dyn('seccompProfile'), dyn({value})]] : []"),
                    container: format!(
                        "variables.seccompOn && !variables.seccompAtPod \
                         && !c.?securityContext.?seccompProfile.hasValue() && !({guarded}) \
                         ? [[dyn('seccompProfile'), dyn({value})]] : []",
                        guarded = seccomp_guarded()
                    ),
                }
            }
        },
        Field::AllowPrivilegeEscalation => match b.allow_privilege_escalation {
            None | Some(true) => Rule::Off,
            // The API server rejects allowPrivilegeEscalation: false beside
            // privileged or an added SYS_ADMIN.
            Some(false) => Rule::Container(format!(
                "{skip} && !c.?securityContext.?allowPrivilegeEscalation.hasValue() \
                 && !c.?securityContext.?privileged.orValue(false) \
                 && !c.?securityContext.?capabilities.?add.orValue([]).exists(a, \
                 a.upperAscii() == 'SYS_ADMIN' || a.upperAscii() == 'CAP_SYS_ADMIN') \
                 ? [[dyn('allowPrivilegeEscalation'), dyn(false)]] : []"
            )),
        },
        Field::DropCapabilities => match b.drop_all_capabilities {
            false => Rule::Off,
            // An existing `add` list stays; a privileged container keeps every capability.
            true => Rule::Container(format!(
                "{skip} && !c.?securityContext.?capabilities.?drop.hasValue() \
                 && !c.?securityContext.?privileged.orValue(false) \
                 ? [c.?securityContext.?capabilities.hasValue() \
                 ? [dyn('capabilities/drop'), dyn(['ALL'])] : [dyn('capabilities'), dyn({{'drop': ['ALL']}})]] : []"
            )),
        },
        // Always possible: a namespace may switch it on (`read-only-root-filesystem: "true"`).
        Field::ReadOnlyRootFilesystem => Rule::Container(format!(
            "variables.readOnlyRootFilesystem && {skip} \
             && !c.?securityContext.?readOnlyRootFilesystem.hasValue() \
             ? [[dyn('readOnlyRootFilesystem'), dyn(true)]] : []"
        )),
        // Always possible: a namespace may switch it on (`apparmor: RuntimeDefault`).
        // Container level; a legacy annotation or a pod-level profile stands.
        Field::AppArmorProfile => Rule::Container(format!(
            "variables.appArmor && {skip} && !c.?securityContext.?appArmorProfile.hasValue() \
             && !('{APPARMOR_CONTAINER_PREFIX}' + c.name in variables.annotations) \
             && !object.spec.?securityContext.?appArmorProfile.hasValue() \
             ? [[dyn('appArmorProfile'), dyn({{'type': 'RuntimeDefault'}})]] : []"
        )),
    })
}

fn id_rule(env: &Env, f: Field, configured: bool, name: &str, skip: &str, guard: &str) -> Rule {
    if !configured && !env.config.namespace_policy.allow_overrides {
        return Rule::Off;
    }
    let var = variable_name(f);
    Rule::Container(format!(
        "variables.{var} > 0 && {}",
        identity(name, &format!("variables.{var}"), skip, guard)
    ))
}

fn variable_name(f: Field) -> &'static str {
    match f {
        Field::RunAsUser => "runAsUser",
        Field::RunAsGroup => "runAsGroup",
        _ => "fsGroup",
    }
}

/// runAsNonRoot, runAsUser, runAsGroup: on a container with neither its own
/// value nor the pod's, unless it explicitly runs as root (its own or the
/// pod's runAsUser 0 or runAsNonRoot false) or is privileged.
fn identity(name: &str, value: &str, skip: &str, guard: &str) -> String {
    format!(
        "variables.ids && {skip} && !object.spec.?securityContext.?{name}.hasValue() \
         && !c.?securityContext.?{name}.hasValue() && !({ROOT}) \
         && !c.?securityContext.?privileged.orValue(false) && {guard} \
         ? [[dyn('{name}'), dyn({value})]] : []"
    )
}

/// Container `c`'s effective identity as submitted (`rules::own_identity`):
/// its own value, else the pod's. `USER` is -1 when neither sets one.
const USER: &str = "c.?securityContext.?runAsUser.orValue(object.spec.?securityContext.?runAsUser.orValue(-1))";
const NON_ROOT_TRUE: &str =
    "c.?securityContext.?runAsNonRoot.orValue(object.spec.?securityContext.?runAsNonRoot.orValue(false))";
/// Explicitly root: `runAsUser: 0` or `runAsNonRoot: false`, its own or the pod's.
const ROOT: &str = "c.?securityContext.?runAsUser.orValue(object.spec.?securityContext.?runAsUser.orValue(-1)) == 0 \
                    || !c.?securityContext.?runAsNonRoot.orValue(object.spec.?securityContext.?runAsNonRoot.orValue(true))";
/// States any identity field, its own or through the pod.
const ANY_ID: &str = "c.?securityContext.?runAsUser.hasValue() || c.?securityContext.?runAsGroup.hasValue() \
                      || c.?securityContext.?runAsNonRoot.hasValue() \
                      || object.spec.?securityContext.?runAsUser.hasValue() \
                      || object.spec.?securityContext.?runAsGroup.hasValue() \
                      || object.spec.?securityContext.?runAsNonRoot.hasValue()";
/// Every container of the pod (`containers::all`).
const ALL_CONTAINERS: &str = "object.spec.?initContainers.orValue([]) + object.spec.containers \
                              + object.spec.?ephemeralContainers.orValue([])";

/// A container whose legacy seccomp annotation asks for another profile than
/// the runtime default (and has no field of its own): the annotation stands.
fn seccomp_guarded() -> String {
    format!(
        "!c.?securityContext.?seccompProfile.hasValue() \
         && '{SECCOMP_CONTAINER_PREFIX}' + c.name in variables.annotations \
         && !(variables.annotations['{SECCOMP_CONTAINER_PREFIX}' + c.name] in ['runtime/default', 'docker/default'])"
    )
}

/// The pod's match conditions: the pods the engine leaves untouched
/// (`rules::untouched`, and `skip: "true"` when opt-outs are honoured).
pub fn match_conditions(config: &Config) -> Vec<(&'static str, String)> {
    let annotations = "object.metadata.?annotations.orValue({})";
    let windows_label = |v: &str| {
        format!(
            "['kubernetes.io/os', 'beta.kubernetes.io/os'].exists(k, {v}.?nodeSelector[?k].orValue('') == 'windows')"
        )
    };
    let windows_term =
        "t.?matchExpressions.orValue([]).exists(e, e.key in ['kubernetes.io/os', 'beta.kubernetes.io/os'] \
                        && e.operator == 'In' && e.?values.orValue([]).exists(v, v == 'windows'))";
    let all_containers = ALL_CONTAINERS;
    let mut out = vec![
        ("not-a-mirror-pod", format!("!('{MIRROR}' in {annotations})")),
        (
            "not-host-process",
            format!(
                "!object.spec.?securityContext.?windowsOptions.?hostProcess.orValue(false) \
                 && !({all_containers}).exists(c, c.?securityContext.?windowsOptions.?hostProcess.orValue(false))"
            ),
        ),
        // Every baseline field is Linux-only except runAsNonRoot, which stops
        // Windows images running as ContainerAdministrator.
        (
            "not-windows",
            format!(
                "object.spec.?os.?name.orValue('') != 'windows' && !{selector} \
                 && !object.spec.?affinity.?nodeAffinity.?requiredDuringSchedulingIgnoredDuringExecution\
                 .?nodeSelectorTerms.orValue([]).exists(t, {windows_term}) \
                 && !object.spec.?affinity.?nodeAffinity.?preferredDuringSchedulingIgnoredDuringExecution\
                 .orValue([]).exists(p, p.preference.with_t) \
                 && (object.spec.?os.?name.orValue('') == 'linux' \
                 || (!{pod_options} && !({all_containers}).exists(c, {container_options})))",
                pod_options = windows_options_set("object.spec.?securityContext"),
                container_options = windows_options_set("c.?securityContext"),
                selector = windows_label("object.spec"),
            )
            .replace(
                "p.preference.with_t",
                &format!("[p.preference].exists(t, {windows_term})"),
            ),
        ),
    ];
    if config.allow_pod_opt_out {
        out.push((
            "not-opted-out",
            format!("{annotations}[?'{SKIP}'].orValue('').trim() != 'true'"),
        ));
    }
    out
}

/// Whether a securityContext sets any member of its `windowsOptions` (an
/// empty `windowsOptions: {}` is the default and says nothing).
fn windows_options_set(security_context: &str) -> String {
    // Exhaustive: a member added to the bindings does not build until listed.
    let WindowsSecurityContextOptions {
        gmsa_credential_spec: _,
        gmsa_credential_spec_name: _,
        host_process: _,
        run_as_user_name: _,
    } = WindowsSecurityContextOptions::default();
    let members = [
        "gmsaCredentialSpec",
        "gmsaCredentialSpecName",
        "hostProcess",
        "runAsUserName",
    ];
    let any: Vec<String> = members.iter().map(|m| format!("has(w.{m})")).collect();
    format!(
        "{security_context}.?windowsOptions.optMap(w, {}).orValue(false)",
        any.join(" || ")
    )
}

/// The policy's variables, in dependency order, before the per-container lists.
pub fn variables(config: &Config) -> Vec<Variable> {
    let b = &config.baseline;
    let overrides = config.namespace_policy.allow_overrides;
    let mut v = vec![Variable {
        name: "annotations",
        expression: "object.metadata.?annotations.orValue({})".into(),
    }];
    v.extend(request_scope());
    if config.allow_pod_opt_out {
        v.push(Variable {
            name: "skipFields",
            expression: format!("variables.annotations[?'{SKIP_FIELDS}'].orValue('').split(',').map(s, s.trim())"),
        });
    }
    let ids = [
        ("runAsUser", RUN_AS_USER, b.run_as_user),
        ("runAsGroup", RUN_AS_GROUP, b.run_as_group),
        ("fsGroup", FS_GROUP, b.fs_group),
    ];
    for (name, key, value) in ids {
        let fallback = value.unwrap_or(0);
        let expression = if overrides {
            // A non-root ID from 1 to 2147483647, as `str::parse::<i64>` reads it.
            let raw = namespace_value(key);
            format!(
                "{raw}.matches('^[+]?0*[0-9]{{1,10}}$') && int({raw}) >= 1 && int({raw}) <= 2147483647 \
                 ? int({raw}) : {fallback}"
            )
        } else {
            fallback.to_string()
        };
        v.push(Variable { name, expression });
    }
    identity_variables(config, &mut v);
    // Namespaces may always switch these on; switching off needs
    // namespacePolicy.allowOptOut, which `policy` refuses.
    v.push(Variable {
        name: "readOnlyRootFilesystem",
        expression: if b.read_only_root_filesystem {
            "true".into()
        } else {
            format!("{} == 'true'", namespace_value(READ_ONLY_ROOT_FILESYSTEM))
        },
    });
    v.push(Variable {
        name: "appArmor",
        expression: if b.app_armor_profile.is_some() {
            "true".into()
        } else {
            format!("{} == 'RuntimeDefault'", namespace_value(APPARMOR))
        },
    });
    if b.seccomp_profile.is_some() {
        let in_scope = in_scope_containers();
        v.push(Variable {
            name: "seccompOn",
            expression: format!(
                "{skip} && !object.spec.?securityContext.?seccompProfile.hasValue() \
                 && variables.annotations[?'{SECCOMP_POD}'].orValue('runtime/default') in ['runtime/default', 'docker/default']",
                skip = Env { config }.not_skipped(Field::SeccompProfile)
            ),
        });
        v.push(Variable {
            name: "seccompAtPod",
            expression: format!(
                "variables.seccompOn && variables.podLevel && !({in_scope}).exists(c, {})",
                seccomp_guarded()
            ),
        });
    }
    v
}

/// The pod's identity decision (`rules::decide_identity`): `hostUsersAdd`
/// (add `hostUsers: false`) and `ids` (the ID rules apply).
fn identity_variables(config: &Config, v: &mut Vec<Variable>) {
    let b = &config.baseline;
    let default = b.identity == IdentityMode::Userns;
    let userns = if config.namespace_policy.allow_overrides {
        // The namespace's `uid` or `userns`; anything else (`auto`, which CEL
        // cannot do) leaves the configuration's.
        let raw = namespace_value(IDENTITY);
        format!("{raw} == 'userns' || ({raw} != 'uid' && {default})")
    } else {
        default.to_string()
    };
    v.push(Variable {
        name: "userns",
        expression: userns,
    });
    let in_scope = in_scope_containers();
    // Where the API server refuses a user namespace, privileged containers,
    // an update (hostUsers is immutable), the pod's own hostUsers, an opt-out;
    // then the containers that state a non-root identity decide for themselves.
    let root_ok = if b.user_namespace_for_explicit_root {
        String::new()
    } else {
        format!(" && !({in_scope}).exists(c, {ROOT})")
    };
    v.push(Variable {
        name: "hostUsersAdd",
        expression: format!(
            "variables.userns && variables.podLevel && !object.spec.?hostUsers.hasValue() && {skip} \
             && !object.spec.?hostNetwork.orValue(false) && !object.spec.?hostPID.orValue(false) \
             && !object.spec.?hostIPC.orValue(false) \
             && !({ALL_CONTAINERS}).exists(c, c.?volumeDevices.orValue([]).size() > 0 \
             || c.?securityContext.?privileged.orValue(false)) \
             && !({in_scope}).exists(c, ({ANY_ID}) && !({ROOT})){root_ok}",
            skip = Env { config }.not_skipped(Field::HostUsers)
        ),
    });
    // A pod in a user namespace (added, or its own `hostUsers: false`) gets no IDs.
    v.push(Variable {
        name: "ids",
        expression: "!variables.hostUsersAdd && !(variables.userns && !object.spec.?hostUsers.orValue(true))".into(),
    });
}

/// Every container of the pod in scope of this request (the pod's on CREATE,
/// the new ephemeral ones on an update).
fn in_scope_containers() -> String {
    "(variables.podLevel ? object.spec.?initContainers.orValue([]) + object.spec.containers : []) \
     + object.spec.?ephemeralContainers.orValue([]).filter(e, variables.podLevel || !(e.name in variables.oldEphemeral))"
        .into()
}

use crate::policy::namespace::{APPARMOR, FS_GROUP, IDENTITY, READ_ONLY_ROOT_FILESYSTEM, RUN_AS_GROUP, RUN_AS_USER};

/// A namespace's value for `key`: the label, else the annotation, trimmed.
fn namespace_value(key: &str) -> String {
    format!(
        "namespaceObject.metadata.?labels[?'{key}'].orValue(namespaceObject.metadata.?annotations[?'{key}'].orValue('')).trim()"
    )
}

/// The container lists, with the condition under which each container is in scope.
pub const LISTS: [(&str, &str); 3] = [
    ("initContainers", "variables.podLevel"),
    ("containers", "variables.podLevel"),
    (
        "ephemeralContainers",
        "variables.podLevel || !(c.name in variables.oldEphemeral)",
    ),
];

/// The JSONPatch expression: pod-level pairs, then each list's.
pub fn mutation() -> String {
    let mut s = String::from(
        "variables.specAdds.map(a, JSONPatch{op: 'add', path: '/spec/' + string(a[0]), value: a[1]}) +\n\
         (variables.podAdds.size() > 0 && !has(object.spec.securityContext) \
         ? [JSONPatch{op: 'add', path: '/spec/securityContext', value: {}}] : []) +\n\
         variables.podAdds.map(a, JSONPatch{op: 'add', path: '/spec/securityContext/' + string(a[0]), value: a[1]})",
    );
    for (list, _) in LISTS {
        let var = list_variable(list);
        let _ = write!(
            s,
            " +\nvariables.{var}.transformList(i, adds, adds.size() > 0, \
             (has(object.spec.{list}[i].securityContext) ? [] \
             : [JSONPatch{{op: 'add', path: '/spec/{list}/' + string(i) + '/securityContext', value: {{}}}}]) \
             + adds.map(a, JSONPatch{{op: 'add', path: '/spec/{list}/' + string(i) + '/securityContext/' + string(a[0]), value: a[1]}})).flatten()"
        );
    }
    s
}

/// The variable holding a list's per-container pairs.
pub fn list_variable(list: &str) -> &'static str {
    match list {
        "initContainers" => "initContainerAdds",
        "containers" => "containerAdds",
        _ => "ephemeralContainerAdds",
    }
}

/// Refuse settings a policy cannot express, naming them.
pub fn check_expressible(config: &Config) -> Result<(), PolicyError> {
    use crate::config::Mode;
    if config.mode == Mode::Audit {
        return Err(PolicyError::Unsupported {
            setting: "mode: audit".into(),
            reason: "a MutatingAdmissionPolicy cannot report what it would add without adding it".into(),
        });
    }
    if config.baseline.identity == IdentityMode::Auto {
        return Err(PolicyError::Unsupported {
            setting: "baseline.identity: auto".into(),
            reason: "CEL cannot look up an image's user in its registry; use identity: userns (a user namespace) \
                     or uid (the baseline's uid), or the webhook"
                .into(),
        });
    }
    if config.namespace_policy.allow_opt_out {
        return Err(PolicyError::Unsupported {
            setting: "namespacePolicy.allowOptOut: true".into(),
            reason: "namespace mode audit/off and switching fields off per namespace are not compiled into the policy"
                .into(),
        });
    }
    for &check in &config.deny {
        deny_check(check)?;
    }
    Ok(())
}

/// The deny list's counterpart: a CEL condition on the final pod that is
/// true when it fails `check` (`crates/engine/src/restricted.rs`), looking only at the
/// containers of this request (`variables.containers`) and, on CREATE, the
/// pod level. Checks without one make `policy` refuse, naming the check.
pub fn deny_check(check: Check) -> Result<String, PolicyError> {
    let linux = "object.spec.?os.?name.orValue('') != 'windows'";
    let unsupported = |check: Check| PolicyError::Unsupported {
        setting: format!("deny: [{}]", check.as_str()),
        reason: "this check has no CEL counterpart yet; use the webhook, or Pod Security's own enforce level".into(),
    };
    Ok(match check {
        Check::HostNamespaces => "variables.podLevel && (object.spec.?hostNetwork.orValue(false) \
                                  || object.spec.?hostPID.orValue(false) || object.spec.?hostIPC.orValue(false))"
            .into(),
        Check::Privileged => "variables.containers.exists(c, c.?securityContext.?privileged.orValue(false))".into(),
        Check::HostPathVolumes => {
            "variables.podLevel && object.spec.?volumes.orValue([]).exists(v, has(v.hostPath))".into()
        }
        Check::HostPorts => {
            "variables.containers.exists(c, c.?ports.orValue([]).exists(p, p.?hostPort.orValue(0) != 0))".into()
        }
        Check::AllowPrivilegeEscalation => format!(
            "{linux} && variables.containers.exists(c, c.?securityContext.?allowPrivilegeEscalation.orValue(true))"
        ),
        Check::HostProcess
        | Check::Capabilities
        | Check::HostProbesAndHostLifecycle
        | Check::AppArmorProfile
        | Check::SeLinuxOptions
        | Check::ProcMount
        | Check::SeccompProfile
        | Check::Sysctls
        | Check::RestrictedVolumes
        | Check::RunAsNonRoot
        | Check::RunAsUser => return Err(unsupported(check)),
    })
}

/// The variables of the deny policy: request scope as in the mutation.
pub fn deny_variables() -> Vec<Variable> {
    let mut v: Vec<Variable> = request_scope().into();
    v.push(Variable {
        name: "containers",
        expression: in_scope_containers(),
    });
    v
}

/// Which request this is: a new pod (`podLevel`), or an update of
/// `pods/ephemeralcontainers`, where only the new ephemeral containers
/// change (`oldEphemeral` names the others). Shared by the mutation and the
/// deny policy.
fn request_scope() -> [Variable; 2] {
    [
        Variable {
            name: "podLevel",
            expression: "request.operation == 'CREATE'".into(),
        },
        Variable {
            name: "oldEphemeral",
            expression: "variables.podLevel ? [] : oldObject.spec.?ephemeralContainers.orValue([]).map(e, e.name)"
                .into(),
        },
    ]
}

/// The warning counterpart of the engine's `kept` reports: a CEL condition
/// true when the pod states a value weaker than the baseline for `f`, where
/// the baseline would otherwise add `f`. `None`: the engine never reports it.
pub fn kept(env: &Env, f: Field) -> Option<String> {
    let b = &env.config.baseline;
    let skip = env.not_skipped(f);
    let pod = "object.spec.?securityContext";
    let any = |cond: &str| format!("{skip} && variables.containers.exists(c, {cond})");
    let id_zero = |name: &str, on: bool| {
        (on || env.config.namespace_policy.allow_overrides).then(|| {
            format!(
                "{skip} && ({pod}.?{name}.orValue(-1) == 0 \
                 || variables.containers.exists(c, c.?securityContext.?{name}.orValue(-1) == 0))"
            )
        })
    };
    // The ID rules report nothing for a pod in a user namespace.
    let id_zero = |name: &str, on: bool| id_zero(name, on).map(|c| format!("variables.ids && {c}"));
    match f {
        Field::HostUsers => None,
        Field::RunAsNonRoot => b.run_as_non_root.then(|| {
            format!(
                "variables.ids && {skip} && (!{pod}.?runAsNonRoot.orValue(true) \
                 || variables.containers.exists(c, !c.?securityContext.?runAsNonRoot.orValue(true)))"
            )
        }),
        Field::RunAsUser => id_zero("runAsUser", b.run_as_user.is_some()),
        Field::RunAsGroup => id_zero("runAsGroup", b.run_as_group.is_some()),
        Field::FsGroup => (b.fs_group.is_some() || env.config.namespace_policy.allow_overrides)
            .then(|| format!("{skip} && variables.podLevel && {pod}.?fsGroup.orValue(-1) == 0")),
        Field::FsGroupChangePolicy | Field::SupplementalGroups => None,
        Field::SeccompProfile => b.seccomp_profile.map(|_| {
            let weak = "!(p.type in ['RuntimeDefault', 'Localhost'])";
            format!(
                "{skip} && ({pod}.?seccompProfile.optMap(p, {weak}).orValue(false) \
                 || variables.containers.exists(c, c.?securityContext.?seccompProfile.optMap(p, {weak}).orValue(false)))"
            )
        }),
        Field::AllowPrivilegeEscalation => (b.allow_privilege_escalation == Some(false))
            .then(|| any("c.?securityContext.?allowPrivilegeEscalation.orValue(false)")),
        Field::DropCapabilities => b.drop_all_capabilities.then(|| {
            any("c.?securityContext.?capabilities.?drop.optMap(d, !('ALL' in d)).orValue(false)")
        }),
        Field::ReadOnlyRootFilesystem => Some(format!(
            "variables.readOnlyRootFilesystem && {}",
            any("!c.?securityContext.?readOnlyRootFilesystem.orValue(true)")
        )),
        Field::AppArmorProfile => Some(format!(
            "variables.appArmor && {}",
            any("c.?securityContext.?appArmorProfile.?type.orValue('') == 'Unconfined'")
        )),
    }
}
