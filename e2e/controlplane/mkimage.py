#!/usr/bin/env python3
"""Write a single-layer OCI image archive (an image layout in a tar) that
`ctr -n k8s.io images import` takes as it is: no registry, no Docker.

Usage:
  mkimage.py pause   OUT.tar NAME PAUSE_BINARY     # /pause, the sandbox image
  mkimage.py busybox OUT.tar NAME BUSYBOX_BINARY   # a static busybox + applets

NAME is the full reference, e.g. localhost/secure-defaults-e2e/pause:3.10.
The busybox image has /etc/passwd and /etc/group with root and
nonroot (65532), a world-writable /tmp, and no default user: the pod decides.
Timestamps are fixed, so the same inputs give the same digests.
"""

import hashlib
import io
import json
import platform
import subprocess
import sys
import tarfile

MTIME = 0
# GOARCH of this machine: the binaries in the image are the host's own.
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _info(name, kind, mode, size=0, target=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.mtime = kind, mode, size, MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.linkname = target
    return ti


class Layer:
    """An uncompressed layer tar built in memory (a few MB at most)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.dirs = set()

    def dir(self, path, mode=0o755):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self.tar.addfile(_info(d, tarfile.DIRTYPE, mode if i == len(parts) else 0o755))

    def file(self, path, data, mode=0o644):
        self.dir(path.rsplit("/", 1)[0] or "/")
        self.tar.addfile(_info(path.strip("/"), tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))

    def symlink(self, path, target):
        self.dir(path.rsplit("/", 1)[0] or "/")
        self.tar.addfile(_info(path.strip("/"), tarfile.SYMTYPE, 0o777, target=target))

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def blob(out, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    out.addfile(_info("blobs/sha256/" + digest[7:], tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return digest


def write_image(path, name, layer, entrypoint, cmd=None):
    layer_bytes = layer.bytes()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as out:
        layer_digest = blob(out, layer_bytes)
        config = {
            "architecture": ARCH,
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = blob(out, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer_bytes),
                }
            ],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = blob(out, manifest_bytes)
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest_bytes),
                    "platform": {"architecture": ARCH, "os": "linux"},
                    "annotations": {
                        # ctr import names the image after this one.
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
        for fname, data in (
            ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
            ("index.json", json.dumps(index, sort_keys=True).encode()),
        ):
            out.addfile(_info(fname, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def has_interpreter(elf):
    """True if a 64-bit little-endian ELF asks for a dynamic loader (PT_INTERP)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        sys.exit("mkimage.py: not a 64-bit ELF binary")
    phoff = int.from_bytes(elf[32:40], "little")
    phentsize = int.from_bytes(elf[54:56], "little")
    phnum = int.from_bytes(elf[56:58], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(elf[off : off + 4], "little") == 3:
            return True
    return False


def pause(out, name, binary):
    layer = Layer()
    layer.file("/pause", read(binary), 0o755)
    write_image(out, name, layer, ["/pause"])


def busybox(out, name, binary):
    # Only a static busybox works in an image with no libc.
    if has_interpreter(read(binary)):
        sys.exit(f"mkimage.py: {binary} is dynamically linked (apt-get install -y busybox-static)")
    applets = subprocess.run([binary, "--list"], capture_output=True, text=True, check=True).stdout.split()
    layer = Layer()
    layer.file("/bin/busybox", read(binary), 0o755)
    for applet in sorted(set(applets) - {"busybox"}):
        layer.symlink("/bin/" + applet, "busybox")
    layer.file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh\n")
    layer.file("/etc/group", b"root:x:0:\nnonroot:x:65532:\n")
    layer.dir("/tmp", 0o1777)
    layer.dir("/root", 0o700)
    layer.dir("/home/nonroot")
    write_image(out, name, layer, None, ["/bin/sh"])


def main(argv):
    if len(argv) != 5 or argv[1] not in ("pause", "busybox"):
        sys.exit(__doc__)
    {"pause": pause, "busybox": busybox}[argv[1]](argv[2], argv[3], argv[4])


if __name__ == "__main__":
    main(sys.argv)
