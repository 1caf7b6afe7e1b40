#!/usr/bin/env python3
"""Assemble an OCI image-layout archive from a JSON spec, without a registry,
a container engine or root, and read one back.

    ociimage.py build SPEC.json -o OUT.tar [--var NAME=VALUE ...]
    ociimage.py inspect OUT.tar          # verifies every digest, prints the config

The archive is a plain tar of `oci-layout`, `index.json` (one manifest, named
by `org.opencontainers.image.ref.name` and `io.containerd.image.name`) and
`blobs/sha256/*`, which `ctr -n k8s.io images import` takes as it is.

Output is deterministic: the same spec and inputs give the same bytes. Every
tar entry has the spec's mtime (default 0), numeric uid/gid and no user or
group names, entries are sorted by path, and gzip layers carry no name or time.

Spec (JSON; `${NAME}` in any string is replaced by a --var or, failing that,
an environment variable):

    {
      "name": "localhost/example:1",          # full reference, localhost/...
      "mtime": 0,                             # optional, for every entry
      "compression": "gzip" | "none",         # optional, default gzip
      "config": {"User": "65532:65532", "Entrypoint": [...], "Cmd": [...],
                 "Env": [...], "ExposedPorts": {"8080/tcp": {}},
                 "WorkingDir": "/", "Volumes": {...}, "Labels": {...}},
      "layers": [                             # bottom first
        {"tree": "/path/to/rootfs",           # optional: a directory, owners and
         "exclude": ["/dev/*", "/proc/*"],    #   modes as they are on disk
         "over": "/path/to/base",             # optional: only what tree changed
                                              #   from this one (+ whiteouts)
         "entries": [                         # optional: added or replacing tree entries
           {"path": "/etc/passwd", "content": "root:x:0:0::/root:/sbin/nologin\\n",
            "mode": "0644", "uid": 0, "gid": 0},
           {"path": "/usr/local/bin/app", "src": "${BINARY}", "mode": "0755"},
           {"path": "/data", "type": "dir", "mode": "0775", "uid": 0, "gid": 0},
           {"path": "/bin/sh", "type": "symlink", "target": "busybox"}]}]
    }

Other top-level keys are ignored: callers keep their own metadata there
(e2e/images puts its health checks under "test"). Entries default to uid 0,
gid 0 and mode 0644 (files) or 0755 (dirs). A parent directory missing from a
layer is added as 0755 root:root. Hard links inside a tree stay hard links
(the first path in sorted order carries the data).
"""

import argparse
import datetime
import fnmatch
import gzip
import hashlib
import io
import json
import os
import re
import stat
import sys
import tarfile
import tempfile

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
# The config fields an image may set (OCI image-spec config.md); anything else
# in a spec is a typo, refused rather than silently dropped.
CONFIG_FIELDS = {
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
}


class SpecError(Exception):
    pass


# ---------------------------------------------------------------- spec


def substitute(value, variables):
    """Replace ${NAME} in every string of a JSON value."""
    if isinstance(value, str):

        def repl(m):
            name = m.group(1)
            if name in variables:
                return variables[name]
            if name in os.environ:
                return os.environ[name]
            raise SpecError(f"${{{name}}} is not set (--var {name}=... or the environment)")

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", repl, value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def load_spec(path, variables):
    with open(path, encoding="utf-8") as f:
        spec = substitute(json.load(f), variables)
    base = os.path.dirname(os.path.abspath(path))
    # Relative paths in a spec are relative to the spec file.
    for layer in spec.get("layers", []):
        for key in ("tree", "over"):
            if key in layer:
                layer[key] = os.path.join(base, layer[key])
        for e in layer.get("entries", []):
            if "src" in e:
                e["src"] = os.path.join(base, e["src"])
    return spec


def check_spec(spec):
    name = spec.get("name", "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?", name):
        raise SpecError(f"name {name!r} is not an image reference")
    unknown = set(spec.get("config", {})) - CONFIG_FIELDS
    if unknown:
        raise SpecError(f"unknown config fields: {sorted(unknown)}")
    if spec.get("compression", "gzip") not in MEDIA_LAYER:
        raise SpecError(f"compression must be one of {sorted(MEDIA_LAYER)}")
    if not spec.get("layers"):
        raise SpecError("an image needs at least one layer")


# ---------------------------------------------------------------- layers


class Entry:
    """One tar member: what it is, who owns it, where its bytes come from."""

    __slots__ = ("path", "kind", "mode", "uid", "gid", "src", "content", "target")

    def __init__(self, path, kind, mode, uid=0, gid=0, src=None, content=None, target=None):
        self.path, self.kind, self.mode = path, kind, mode
        self.uid, self.gid = uid, gid
        self.src, self.content, self.target = src, content, target


def norm(path):
    """'/a/b/' -> 'a/b': tar member names are relative, without a trailing slash."""
    p = os.path.normpath("/" + path).lstrip("/")
    if not p or p == ".":
        raise SpecError(f"bad path {path!r}")
    return p


def parse_mode(value, default):
    if value is None:
        return default
    return int(value, 8) if isinstance(value, str) else int(value)


def tree_entries(root, excludes):
    """Entries for everything under root, owners and modes from lstat."""
    out = {}
    inodes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if any(fnmatch.fnmatchcase("/" + rel, pat) for pat in excludes):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                e = Entry(rel, "dir", mode, st.st_uid, st.st_gid)
            elif stat.S_ISLNK(st.st_mode):
                e = Entry(rel, "symlink", 0o777, st.st_uid, st.st_gid, target=os.readlink(full))
            elif stat.S_ISREG(st.st_mode):
                e = Entry(rel, "file", mode, st.st_uid, st.st_gid, src=full)
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            else:
                raise SpecError(f"{full}: device, fifo or socket; exclude it")
            out[rel] = e
    # Hard links: the first path in sorted order holds the data, the others point at it.
    for paths in inodes.values():
        paths.sort()
        for p in paths[1:]:
            out[p].kind, out[p].target, out[p].src = "hardlink", paths[0], None
    return out


def spec_entries(entries):
    out = {}
    for e in entries:
        path = norm(e["path"])
        kind = e.get("type", "file")
        uid, gid = int(e.get("uid", 0)), int(e.get("gid", 0))
        if kind == "dir":
            out[path] = Entry(path, "dir", parse_mode(e.get("mode"), 0o755), uid, gid)
        elif kind == "symlink":
            out[path] = Entry(path, "symlink", 0o777, uid, gid, target=e["target"])
        elif kind == "file":
            if ("src" in e) == ("content" in e):
                raise SpecError(f"{e['path']}: a file needs exactly one of src and content")
            content = e.get("content")
            out[path] = Entry(
                path,
                "file",
                parse_mode(e.get("mode"), 0o644),
                uid,
                gid,
                src=e.get("src"),
                content=content.encode() if content is not None else None,
            )
        else:
            raise SpecError(f"{e['path']}: unknown type {kind!r}")
    return out


def same_file(a, b):
    """True when two lstat'ed regular files of the same size hold the same bytes."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def unchanged(e, b):
    """Whether entry e (of a tree) equals entry b (of the tree below it)."""
    if (e.kind, e.mode, e.uid, e.gid, e.target) != (b.kind, b.mode, b.uid, b.gid, b.target):
        return False
    if e.kind != "file":
        return True
    se, sb = os.lstat(e.src), os.lstat(b.src)
    if se.st_size != sb.st_size:
        return False
    return se.st_mtime_ns == sb.st_mtime_ns or same_file(e.src, b.src)


def diff_entries(top, below):
    """What a layer over `below` needs so that the result is `top`: changed and
    new entries, with their parents as they are in top, and a whiteout for each
    topmost path that top no longer has."""
    keep = {p for p, e in top.items() if p not in below or not unchanged(e, below[p])}
    # A hard link needs its target in the same layer, and a changed file takes
    # its other names with it.
    keep |= {top[p].target for p in keep if top[p].kind == "hardlink"}
    keep |= {p for p, e in top.items() if e.kind == "hardlink" and e.target in keep}
    for p in list(keep):
        parent = os.path.dirname(p)
        while parent and parent not in keep:
            keep.add(parent)
            parent = os.path.dirname(parent)
    out = {p: top[p] for p in keep}
    for p in below:
        parent = os.path.dirname(p)
        if p not in top and (not parent or parent in top):
            wh = os.path.join(parent, ".wh." + os.path.basename(p))
            out[wh] = Entry(wh, "file", 0o644, content=b"")
    return out


def layer_entries(layer):
    entries = {}
    if "tree" in layer:
        if not os.path.isdir(layer["tree"]):
            raise SpecError(f"tree {layer['tree']} is not a directory")
        excludes = layer.get("exclude", [])
        entries.update(tree_entries(layer["tree"], excludes))
        if "over" in layer:
            entries = diff_entries(entries, tree_entries(layer["over"], excludes))
    entries.update(spec_entries(layer.get("entries", [])))
    # Missing parents become plain root directories, so every entry has a parent.
    for path in list(entries):
        parent = os.path.dirname(path)
        while parent and parent not in entries:
            entries[parent] = Entry(parent, "dir", 0o755)
            parent = os.path.dirname(parent)
    return [entries[p] for p in sorted(entries)]


class HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, inner):
        self.inner, self.sha, self.size = inner, hashlib.sha256(), 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def tell(self):
        return self.size

    def flush(self):
        self.inner.flush()

    def digest(self):
        return "sha256:" + self.sha.hexdigest()


def tarinfo(name, kind, mode, uid, gid, mtime, size=0, linkname=""):
    ti = tarfile.TarInfo(name)
    ti.type = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
    }[kind]
    ti.mode, ti.uid, ti.gid, ti.mtime, ti.size = mode, uid, gid, mtime, size
    ti.uname = ti.gname = ""
    ti.linkname = linkname
    return ti


def write_layer(entries, out, compression, mtime):
    """Write one layer tar into the binary file `out`; return (digest, diff_id, size)."""
    blob = HashingWriter(out)
    gz = None
    if compression == "gzip":
        # filename='' and mtime=0: no name and no time in the gzip header.
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=blob, compresslevel=6, mtime=0)
        raw = HashingWriter(gz)
    else:
        raw = blob
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            name = e.path + ("/" if e.kind == "dir" else "")
            if e.kind == "file":
                if e.content is not None:
                    ti = tarinfo(name, "file", e.mode, e.uid, e.gid, mtime, len(e.content))
                    tar.addfile(ti, io.BytesIO(e.content))
                else:
                    with open(e.src, "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        tar.addfile(tarinfo(name, "file", e.mode, e.uid, e.gid, mtime, size), f)
            else:
                ti = tarinfo(name, e.kind, e.mode, e.uid, e.gid, mtime, linkname=e.target or "")
                tar.addfile(ti)
    if gz is not None:
        gz.close()
    return blob.digest(), raw.digest(), blob.size


# ---------------------------------------------------------------- image


def json_blob(obj):
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def build(spec, out_path):
    """Write the archive; return the manifest digest."""
    check_spec(spec)
    compression = spec.get("compression", "gzip")
    mtime = int(spec.get("mtime", 0))
    created = datetime.datetime.fromtimestamp(mtime, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out_dir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".oci-") as tmp:
        layers, diff_ids, blobs = [], [], {}
        for i, layer in enumerate(spec["layers"]):
            path = os.path.join(tmp, f"layer{i}")
            with open(path, "wb") as f:
                digest, diff_id, size = write_layer(layer_entries(layer), f, compression, mtime)
            blobs[digest] = path
            layers.append({"mediaType": MEDIA_LAYER[compression], "digest": digest, "size": size})
            diff_ids.append(diff_id)
        config = {
            "created": created,
            "architecture": spec.get("architecture", "amd64"),
            "os": "linux",
            "config": spec.get("config", {}),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": f"ociimage.py layer {i}"} for i in range(len(layers))],
        }
        config_digest, config_data = json_blob(config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_data)},
            "layers": layers,
        }
        manifest_digest, manifest_data = json_blob(manifest)
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest_data),
                    "platform": {"architecture": config["architecture"], "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": spec["name"],
                        "org.opencontainers.image.ref.name": spec["name"],
                    },
                }
            ],
        }
        members = [
            ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
            ("index.json", json.dumps(index, sort_keys=True, separators=(",", ":")).encode()),
        ]
        small = {config_digest: config_data, manifest_digest: manifest_data}
        partial = os.path.join(tmp, "archive.tar")
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in members:
                tar.addfile(tarinfo(name, "file", 0o644, 0, 0, mtime, len(data)), io.BytesIO(data))
            for d in ("blobs/", "blobs/sha256/"):
                tar.addfile(tarinfo(d, "dir", 0o755, 0, 0, mtime))
            for digest in sorted(set(blobs) | set(small)):
                name = "blobs/sha256/" + digest.split(":", 1)[1]
                if digest in small:
                    data = small[digest]
                    tar.addfile(tarinfo(name, "file", 0o644, 0, 0, mtime, len(data)), io.BytesIO(data))
                else:
                    with open(blobs[digest], "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        tar.addfile(tarinfo(name, "file", 0o644, 0, 0, mtime, size), f)
        # Renamed into place only when complete: a killed build leaves no archive.
        os.replace(partial, out_path)
    return manifest_digest


# ---------------------------------------------------------------- reading back


def read_archive(path):
    """Read an archive, check every digest and diff_id; return a summary dict.

    Raises ValueError on any mismatch."""
    with tarfile.open(path) as tar:
        files = {m.name.rstrip("/"): m for m in tar.getmembers()}

        def read(name):
            if name not in files:
                raise ValueError(f"{path}: no {name}")
            return tar.extractfile(files[name]).read()

        def blob(desc):
            data = read("blobs/sha256/" + desc["digest"].split(":", 1)[1])
            if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
                raise ValueError(f"{desc['digest']}: content does not match its digest")
            if len(data) != desc["size"]:
                raise ValueError(f"{desc['digest']}: size {len(data)} != {desc['size']}")
            return data

        layout = json.loads(read("oci-layout"))
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise ValueError("oci-layout: imageLayoutVersion is not 1.0.0")
        index = json.loads(read("index.json"))
        (mdesc,) = index["manifests"]
        manifest = json.loads(blob(mdesc))
        config = json.loads(blob(manifest["config"]))
        layers = []
        for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            data = blob(desc)
            raw = gzip.decompress(data) if desc["mediaType"].endswith("+gzip") else data
            if "sha256:" + hashlib.sha256(raw).hexdigest() != diff_id:
                raise ValueError(f"{desc['digest']}: uncompressed content does not match diff_id {diff_id}")
            with tarfile.open(fileobj=io.BytesIO(raw)) as lt:
                layers.append(
                    [
                        {
                            "name": m.name,
                            "type": m.type.decode(),
                            "mode": m.mode,
                            "uid": m.uid,
                            "gid": m.gid,
                            "mtime": m.mtime,
                            "size": m.size,
                            "linkname": m.linkname,
                            "uname": m.uname,
                            "gname": m.gname,
                        }
                        for m in lt.getmembers()
                    ]
                )
    return {
        "name": mdesc["annotations"]["org.opencontainers.image.ref.name"],
        "manifest_digest": mdesc["digest"],
        "index": index,
        "manifest": manifest,
        "config": config,
        "layers": layers,
        "archive_members": sorted(files),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="assemble an archive from a spec")
    b.add_argument("spec")
    b.add_argument("-o", "--output", required=True)
    b.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    i = sub.add_parser("inspect", help="verify an archive and print its name, digests and config")
    i.add_argument("archive")
    i.add_argument("--files", action="store_true", help="also list each layer's entries")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            variables = dict(v.split("=", 1) for v in args.var)
            digest = build(load_spec(args.spec, variables), args.output)
            print(f"{args.output} {digest}")
        else:
            info = read_archive(args.archive)
            out = {k: info[k] for k in ("name", "manifest_digest")}
            out["config"] = info["config"]["config"]
            out["layers"] = [len(entries) for entries in info["layers"]]
            if args.files:
                out["files"] = info["layers"]
            json.dump(out, sys.stdout, indent=2)
            print()
    except (SpecError, ValueError, OSError) as e:
        print(f"ociimage.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
