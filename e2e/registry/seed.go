package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// archiveBlobs serves blobs straight out of the seed archives (a file and an
// offset per digest) or, for the few the registry makes itself, from memory:
// seeding copies nothing, however large the images.
type archiveBlobs struct {
	mu  sync.RWMutex
	loc map[v1.Hash]blobLoc
}

type blobLoc struct {
	file   string
	offset int64
	size   int64
	data   []byte // when not in a file
}

func newArchiveBlobs() *archiveBlobs { return &archiveBlobs{loc: map[v1.Hash]blobLoc{}} }

func (b *archiveBlobs) lookup(h v1.Hash) (blobLoc, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	l, ok := b.loc[h]
	if !ok {
		return l, registry.ErrNotFound
	}
	return l, nil
}

func (b *archiveBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	l, err := b.lookup(h)
	return l.size, err
}

func (b *archiveBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	l, err := b.lookup(h)
	if err != nil {
		return nil, err
	}
	if l.file == "" {
		return io.NopCloser(bytes.NewReader(l.data)), nil
	}
	f, err := os.Open(l.file)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, l.offset, l.size), f}, nil
}

func (b *archiveBlobs) add(h v1.Hash, l blobLoc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.loc[h] = l
}

// seedArchive indexes the blobs of an OCI image-layout tar and stores its
// one manifest as REPO:TAG (and by digest). Returns the manifest digest.
func seedArchive(reg http.Handler, blobs *archiveBlobs, ref, archive string) (string, error) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return "", fmt.Errorf("%q: want REPO:TAG", ref)
	}
	repo, tag := ref[:i], ref[i+1:]

	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var index []byte
	small := map[v1.Hash][]byte{} // manifests are read from here
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			return "", err
		}
		name := path.Clean(hdr.Name)
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if name == "index.json" {
			if index, err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
				return "", err
			}
			continue
		}
		hex, ok := strings.CutPrefix(name, "blobs/sha256/")
		if !ok {
			continue
		}
		h, err := v1.NewHash("sha256:" + hex)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		// tar.Reader seeks over data it skips and reads headers in whole
		// blocks, so the file position right after Next is the data's start.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return "", err
		}
		blobs.add(h, blobLoc{file: archive, offset: off, size: hdr.Size})
		if hdr.Size <= 1<<20 {
			if small[h], err = io.ReadAll(tr); err != nil {
				return "", err
			}
		}
	}
	if index == nil {
		return "", fmt.Errorf("no index.json: not an OCI image layout")
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(index))
	if err != nil {
		return "", fmt.Errorf("index.json: %w", err)
	}
	if len(idx.Manifests) != 1 || !idx.Manifests[0].MediaType.IsImage() {
		return "", fmt.Errorf("index.json: want exactly one image manifest, have %d entries", len(idx.Manifests))
	}
	d := idx.Manifests[0]
	body, ok := small[d.Digest]
	if !ok {
		return "", fmt.Errorf("manifest %s is not in the archive", d.Digest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	for _, l := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if _, err := blobs.lookup(l.Digest); err != nil {
			return "", fmt.Errorf("blob %s of the manifest is not in the archive", l.Digest)
		}
	}
	if err := putManifest(reg, repo, tag, string(d.MediaType), body); err != nil {
		return "", err
	}
	return d.Digest.String(), nil
}

// oversizedManifest builds faults/oversized's manifest: valid JSON that
// names a small root config and no layers, padded with an annotation to
// `size` bytes, so only a size cap stops a client from reading it all.
func oversizedManifest(blobs *archiveBlobs, size int) ([]byte, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"User":"0"},"rootfs":{"type":"layers","diff_ids":[]}}`)
	h, n, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return nil, err
	}
	blobs.add(h, blobLoc{size: n, data: cfg})
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: h, Size: n},
		Layers:        []v1.Descriptor{},
		Annotations:   map[string]string{"padding": strings.Repeat("x", size)},
	}
	return json.Marshal(m)
}
