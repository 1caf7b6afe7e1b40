"""Tests of ociimage.py: archives are read back with tarfile and every digest,
diff_id, owner, mode and time is checked; the product image spec is checked
against the Dockerfile. Run: python3 -m unittest discover -s hack/oci-image
"""

import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import tarfile
import tempfile
import unittest

import ociimage

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BuildAndReadBack(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.addCleanup(self.tmp.cleanup)
        # A small tree with a hard link, a symlink and odd owners and modes.
        tree = os.path.join(self.dir, "tree")
        os.makedirs(os.path.join(tree, "usr/bin"))
        os.makedirs(os.path.join(tree, "dev/shm"))
        os.makedirs(os.path.join(tree, "var/lib/app"))
        with open(os.path.join(tree, "usr/bin/tool"), "w") as f:
            f.write("#!/bin/true\n")
        os.chmod(os.path.join(tree, "usr/bin/tool"), 0o751)
        os.link(os.path.join(tree, "usr/bin/tool"), os.path.join(tree, "usr/bin/alias"))
        os.symlink("tool", os.path.join(tree, "usr/bin/sym"))
        os.chmod(os.path.join(tree, "var/lib/app"), 0o2770)
        os.chown(os.path.join(tree, "var/lib/app"), 999, 0)
        with open(os.path.join(self.dir, "payload"), "wb") as f:
            f.write(b"\x7fELF fake binary")
        self.spec = {
            "name": "localhost/test/app:1.0",
            "mtime": 1700000000,
            "config": {
                "User": "65532:65532",
                "Entrypoint": ["/usr/local/bin/app"],
                "Cmd": ["serve"],
                "Env": ["PATH=/usr/bin:/bin"],
                "ExposedPorts": {"8080/tcp": {}},
                "WorkingDir": "/home/app",
            },
            "layers": [
                {"tree": tree, "exclude": ["/dev/*"]},
                {
                    "entries": [
                        {"path": "/usr/local/bin/app", "src": os.path.join(self.dir, "payload"), "mode": "0755"},
                        {"path": "/etc/passwd", "content": "app:x:65532:65532::/home/app:/sbin/nologin\n"},
                        {"path": "/home/app", "type": "dir", "mode": "0700", "uid": 65532, "gid": 65532},
                    ]
                },
            ],
        }

    def build(self, spec=None, name="out.tar"):
        out = os.path.join(self.dir, name)
        digest = ociimage.build(json.loads(json.dumps(spec or self.spec)), out)
        return out, digest

    def test_archive_layout_names_and_digests(self):
        out, digest = self.build()
        info = ociimage.read_archive(out)  # raises on any digest or diff_id mismatch
        self.assertEqual(info["manifest_digest"], digest)
        self.assertEqual(info["name"], "localhost/test/app:1.0")
        ann = info["index"]["manifests"][0]["annotations"]
        self.assertEqual(ann["io.containerd.image.name"], "localhost/test/app:1.0")
        self.assertEqual(info["index"]["manifests"][0]["platform"], {"architecture": "amd64", "os": "linux"})
        with tarfile.open(out) as tar:
            names = tar.getnames()
            self.assertEqual(names[:4], ["oci-layout", "index.json", "blobs", "blobs/sha256"])
            blobs = names[4:]
            self.assertEqual(blobs, sorted(blobs))
            # Every blob is named by the sha256 of its content.
            for n in blobs:
                self.assertEqual(sha256(tar.extractfile(n).read()), "sha256:" + n.rsplit("/", 1)[1])
            self.assertEqual({m.mtime for m in tar.getmembers()}, {1700000000})
        self.assertEqual(len(blobs), 4)  # config, manifest, two layers
        self.assertEqual(len(info["config"]["rootfs"]["diff_ids"]), 2)

    def test_config_is_the_spec(self):
        out, _ = self.build()
        config = ociimage.read_archive(out)["config"]
        self.assertEqual(config["config"], self.spec["config"])
        self.assertEqual((config["os"], config["architecture"]), ("linux", "amd64"))
        self.assertEqual(config["created"], "2023-11-14T22:13:20Z")

    def test_entries_owners_modes_and_links(self):
        out, _ = self.build()
        tree, added = ociimage.read_archive(out)["layers"]
        by_name = {e["name"]: e for e in tree}
        self.assertEqual([e["name"] for e in tree], sorted(e["name"] for e in tree))
        # /dev itself stays (a mount point), what is under it does not.
        self.assertIn("dev", by_name)
        self.assertNotIn("dev/shm", by_name)
        self.assertEqual(by_name["usr/bin/alias"]["type"], tarfile.REGTYPE.decode())
        self.assertEqual(by_name["usr/bin/tool"]["type"], tarfile.LNKTYPE.decode())
        self.assertEqual(by_name["usr/bin/tool"]["linkname"], "usr/bin/alias")
        self.assertEqual(by_name["usr/bin/alias"]["mode"], 0o751)
        self.assertEqual((by_name["usr/bin/sym"]["type"], by_name["usr/bin/sym"]["linkname"]), ("2", "tool"))
        app_dir = by_name["var/lib/app"]
        self.assertEqual((app_dir["uid"], app_dir["gid"], app_dir["mode"]), (999, 0, 0o2770))
        for e in tree + added:
            self.assertEqual((e["uname"], e["gname"], e["mtime"]), ("", "", 1700000000), e["name"])
        by_name = {e["name"]: e for e in added}
        # Missing parents are added as root 0755 directories.
        self.assertEqual([e["name"] for e in added], ["etc", "etc/passwd", "home", "home/app", "usr", "usr/local", "usr/local/bin", "usr/local/bin/app"])
        self.assertEqual((by_name["usr/local"]["mode"], by_name["usr/local"]["uid"]), (0o755, 0))
        self.assertEqual((by_name["home/app"]["uid"], by_name["home/app"]["mode"]), (65532, 0o700))
        self.assertEqual((by_name["usr/local/bin/app"]["mode"], by_name["usr/local/bin/app"]["size"]), (0o755, 16))
        self.assertEqual(by_name["etc/passwd"]["mode"], 0o644)

    def test_same_input_same_bytes(self):
        a, da = self.build(name="a.tar")
        b, db = self.build(name="b.tar")
        self.assertEqual(da, db)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())

    def test_plain_tar_layers(self):
        spec = dict(self.spec, compression="none")
        out, _ = self.build(spec)
        info = ociimage.read_archive(out)
        for layer in info["manifest"]["layers"]:
            self.assertEqual(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar")
            # Uncompressed: the blob digest is the diff_id.
        self.assertEqual([l["digest"] for l in info["manifest"]["layers"]], info["config"]["rootfs"]["diff_ids"])

    def test_gzip_header_has_no_name_or_time(self):
        out, _ = self.build()
        info = ociimage.read_archive(out)
        with tarfile.open(out) as tar:
            digest = info["manifest"]["layers"][1]["digest"].split(":")[1]
            data = tar.extractfile("blobs/sha256/" + digest).read()
        self.assertEqual(data[:4], b"\x1f\x8b\x08\x00")  # no FNAME flag
        self.assertEqual(data[4:8], b"\x00\x00\x00\x00")  # MTIME 0
        gzip.decompress(data)

    def test_tampered_blob_is_detected(self):
        out, _ = self.build(dict(self.spec, compression="none"))
        info = ociimage.read_archive(out)
        config_name = "blobs/sha256/" + info["manifest"]["config"]["digest"].split(":")[1]
        bad = os.path.join(self.dir, "bad.tar")
        with tarfile.open(out) as src, tarfile.open(bad, "w") as dst:
            for m in src.getmembers():
                data = src.extractfile(m).read() if m.isfile() else None
                if m.name == config_name:
                    data = data.replace(b"65532:65532", b"00000:00000")
                dst.addfile(m, None if data is None else io.BytesIO(data))
        with self.assertRaisesRegex(ValueError, "does not match its digest"):
            ociimage.read_archive(bad)

    def test_layer_over_a_base_holds_only_the_changes(self):
        base = os.path.join(self.dir, "tree")
        top = os.path.join(self.dir, "top")
        shutil.copytree(base, top, symlinks=True, copy_function=shutil.copy2)
        for d in (base, top):  # copytree does not keep owners
            os.chown(os.path.join(d, "var/lib/app"), 999, 0)
        # The copy broke the hard link; make it one again, as in the base.
        os.unlink(os.path.join(top, "usr/bin/tool"))
        os.link(os.path.join(top, "usr/bin/alias"), os.path.join(top, "usr/bin/tool"))
        os.makedirs(os.path.join(top, "var/lib/app/new"))
        os.chown(os.path.join(top, "var/lib/app/new"), 999, 999)
        os.unlink(os.path.join(top, "usr/bin/sym"))
        with open(os.path.join(top, "usr/bin/alias"), "a") as f:  # both names of the hard link change
            f.write("# changed\n")
        spec = dict(self.spec, layers=[{"tree": base, "exclude": ["/dev/*"]}, {"tree": top, "over": base, "exclude": ["/dev/*"]}])
        out, _ = self.build(spec)
        _, diff = ociimage.read_archive(out)["layers"]
        by_name = {e["name"]: e for e in diff}
        self.assertEqual(
            sorted(by_name),
            ["usr", "usr/bin", "usr/bin/.wh.sym", "usr/bin/alias", "usr/bin/tool", "var", "var/lib", "var/lib/app", "var/lib/app/new"],
        )
        # Parents keep the owner and mode they have in the tree.
        self.assertEqual((by_name["var/lib/app"]["uid"], by_name["var/lib/app"]["mode"]), (999, 0o2770))
        self.assertEqual(by_name["var/lib/app/new"]["gid"], 999)
        self.assertEqual(by_name["usr/bin/tool"]["linkname"], "usr/bin/alias")

    def test_spec_errors(self):
        for change, message in [
            ({"name": "Docker.io/UPPER"}, "not an image reference"),
            ({"config": {"user": "0"}}, "unknown config fields"),
            ({"compression": "zstd"}, "compression"),
            ({"layers": []}, "at least one layer"),
            ({"layers": [{"entries": [{"path": "/x"}]}]}, "exactly one of src and content"),
        ]:
            with self.subTest(change=change), self.assertRaisesRegex(ociimage.SpecError, message):
                self.build(dict(self.spec, **change))

    def test_variables(self):
        self.assertEqual(ociimage.substitute({"a": ["${X}/bin"]}, {"X": "/opt"}), {"a": ["/opt/bin"]})
        with self.assertRaisesRegex(ociimage.SpecError, "NOT_SET_ANYWHERE"):
            ociimage.substitute("${NOT_SET_ANYWHERE}", {})


def dockerfile_final_stage(path):
    """USER, ENTRYPOINT, CMD, ENV, EXPOSE and WORKDIR of the Dockerfile's last stage."""
    lines, cur = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (line.lstrip().startswith("#") or not line.strip()):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            lines.append(cur + line)
            cur = ""
    stages = [[]]
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    out = {"Env": [], "ExposedPorts": {}, "base": None}
    for word, rest in stages[-1]:
        if word == "FROM":
            out["base"] = rest.split()[0]
        elif word == "USER":
            out["User"] = rest
        elif word == "WORKDIR":
            out["WorkingDir"] = rest
        elif word in ("ENTRYPOINT", "CMD"):
            out[word.capitalize() if word == "CMD" else "Entrypoint"] = json.loads(rest)
        elif word == "ENV":
            out["Env"] += [kv for kv in shlex.split(rest)]
        elif word == "EXPOSE":
            for port in rest.split():
                out["ExposedPorts"][port if "/" in port else port + "/tcp"] = {}
    return out


# The environment gcr.io/distroless/static-debian12 sets in its config.
DISTROLESS_ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
]


class ProductImageMatchesDockerfile(unittest.TestCase):
    """hack/oci-image/product.json and the Dockerfile describe the same image."""

    def test_config_and_layout(self):
        docker = dockerfile_final_stage(os.path.join(ROOT, "Dockerfile"))
        # A static binary needs no libc: the distroless static base, not cc.
        self.assertEqual(docker["base"], "gcr.io/distroless/static-debian12:nonroot")
        with tempfile.TemporaryDirectory() as d:
            binary = os.path.join(d, "secure-defaults")
            with open(binary, "wb") as f:
                f.write(b"stand-in for the release binary")
            bundle = os.path.join(d, "ca.crt")
            with open(bundle, "w") as f:
                f.write("-----BEGIN CERTIFICATE-----\n")
            spec = ociimage.load_spec(
                os.path.join(HERE, "product.json"), {"BINARY": binary, "VERSION": "0.0.0-test", "CA_BUNDLE": bundle}
            )
            out = os.path.join(d, "product.tar")
            ociimage.build(spec, out)
            info = ociimage.read_archive(out)
        config = info["config"]["config"]
        self.assertEqual(info["name"], "localhost/secure-defaults:0.0.0-test")
        for key in ("User", "Entrypoint", "Cmd", "WorkingDir", "ExposedPorts"):
            self.assertEqual(config[key], docker[key], key)
        # The Dockerfile's ENV on top of what the distroless base sets.
        self.assertEqual(config["Env"], DISTROLESS_ENV + docker["Env"])
        self.assertRegex(config["User"], r"^[1-9][0-9]*:[1-9][0-9]*$")  # numeric, non-root

        files = {e["name"]: e for layer in info["layers"] for e in layer}
        binary = files["usr/local/bin/secure-defaults"]
        self.assertEqual((binary["mode"], binary["uid"], binary["gid"]), (0o755, 0, 0))
        self.assertEqual(files["home/nonroot"]["uid"], 65532)
        self.assertEqual(files["tmp"]["mode"], 0o1777)
        # The kube client (scan, serve --namespace-policy) verifies with the
        # system's roots and fails without any, as distroless ships them.
        self.assertEqual(files["etc/ssl/certs/ca-certificates.crt"]["mode"], 0o644)
        # No shell and nothing else executable besides the binary.
        executables = sorted(n for n, e in files.items() if e["type"] == "0" and e["mode"] & 0o111)
        self.assertEqual(executables, ["usr/local/bin/secure-defaults"])
        self.assertNotIn("bin/sh", files)

    def test_passwd_and_group_name_the_user(self):
        spec = ociimage.load_spec(os.path.join(HERE, "product.json"), {"BINARY": "-", "VERSION": "x", "CA_BUNDLE": "-"})
        contents = {e["path"]: e.get("content") for layer in spec["layers"] for e in layer.get("entries", [])}
        uid, gid = spec["config"]["User"].split(":")
        self.assertIn(f"nonroot:x:{uid}:{gid}:nonroot:/home/nonroot:/sbin/nologin\n", contents["/etc/passwd"])
        self.assertIn(f"nonroot:x:{gid}:\n", contents["/etc/group"])


if __name__ == "__main__":
    unittest.main()
