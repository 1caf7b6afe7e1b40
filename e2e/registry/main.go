// Command registry is the e2e suite's OCI registry: go-containerregistry's
// pkg/registry (a real implementation of the OCI distribution API) on
// loopback, seeded from the suite's OCI image archives, with one protected
// namespace and a few fault repositories for the image-lookup tests.
//
//	registry --addr-file F --seed e2e/nginx:1.22=nginx.tar --seed private/busybox:1=busybox.tar ...
//
// Repositories under private/ need HTTP basic auth (--user/--password, or
// SD_REGISTRY_USER/SD_REGISTRY_PASSWORD); everything else is anonymous and
// read-only (pushes are refused: the content is what --seed put there).
// Fault repositories, each bounded:
//
//	faults/slow          answers after --slow-delay (then as seeded)
//	faults/unauthorized  always 401, whatever the credentials
//	faults/oversized     a manifest of --oversized-mib MiB
//	faults/redirect      307 to the same path on --redirect-listen (another host)
//	faults/realm         401 with a Bearer challenge whose realm is the cloud metadata address
//
// The version check (/v2/) answers a Basic challenge unless valid
// credentials came, as registries with accounts do. A third address
// (--realm-listen) answers every request, /v2/ included, with the metadata
// Bearer challenge. Once seeded and listening it writes the three addresses
// to --addr-file (main, redirect target, realm; written to a temp name and
// renamed: its presence means ready).
package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

type seeds []string

func (s *seeds) String() string     { return strings.Join(*s, ",") }
func (s *seeds) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	redirectListen := flag.String("redirect-listen", "127.0.0.2:0",
		"second address (another host to a client), the target of faults/redirect")
	realmListen := flag.String("realm-listen", "127.0.0.3:0",
		"third address, where every request gets a Bearer challenge whose realm is the cloud metadata address")
	addrFile := flag.String("addr-file", "", "write the two addresses here once ready")
	user := flag.String("user", envOr("SD_REGISTRY_USER", "e2e"), "user for private/ (env SD_REGISTRY_USER)")
	password := flag.String("password", envOr("SD_REGISTRY_PASSWORD", ""),
		"password for private/ (env SD_REGISTRY_PASSWORD; required)")
	slowDelay := flag.Duration("slow-delay", 5*time.Second, "how long faults/slow waits before answering")
	oversizedMiB := flag.Int("oversized-mib", 8, "size of faults/oversized's manifest")
	var seed seeds
	flag.Var(&seed, "seed", "REPO:TAG=ARCHIVE: serve the image in an OCI archive (tar of an image layout); repeatable")
	flag.Parse()

	if *password == "" {
		log.Fatal("registry: --password (or SD_REGISTRY_PASSWORD) is required")
	}
	if *slowDelay > time.Minute || *oversizedMiB < 1 || *oversizedMiB > 64 {
		log.Fatal("registry: --slow-delay is at most 1m, --oversized-mib 1..64")
	}
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	blobs := newArchiveBlobs()
	reg := registry.New(registry.WithBlobHandler(blobs), registry.Logger(log.New(io.Discard, "", 0)))

	start := time.Now()
	for _, s := range seed {
		ref, archive, ok := strings.Cut(s, "=")
		if !ok {
			log.Fatalf("registry: --seed %q: want REPO:TAG=ARCHIVE", s)
		}
		digest, err := seedArchive(reg, blobs, ref, archive)
		if err != nil {
			log.Fatalf("registry: seed %s from %s: %v", ref, archive, err)
		}
		log.Printf("seeded %s@%s from %s", ref, digest, archive)
	}
	oversized, err := oversizedManifest(blobs, *oversizedMiB<<20)
	if err != nil {
		log.Fatalf("registry: %v", err)
	}
	log.Printf("seeded %d images in %s", len(seed), time.Since(start).Round(time.Millisecond))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("registry: %v", err)
	}
	other, err := net.Listen("tcp", *redirectListen)
	if err != nil {
		log.Fatalf("registry: %v", err)
	}
	realm, err := net.Listen("tcp", *realmListen)
	if err != nil {
		log.Fatalf("registry: %v", err)
	}
	readOnly := readOnly(reg)
	f := &faults{
		next:         readOnly,
		user:         *user,
		password:     *password,
		slowDelay:    *slowDelay,
		oversized:    oversized,
		redirectHost: other.Addr().String(),
	}
	servers := []*http.Server{
		server(logged("main", f)), server(logged("other", readOnly)), server(logged("realm", http.HandlerFunc(metadataRealm))),
	}
	errs := make(chan error, 3)
	for i, l := range []net.Listener{ln, other, realm} {
		go func() { errs <- servers[i].Serve(l) }()
	}
	log.Printf("serving on %s (faults/redirect points to %s; metadata realm on %s)", ln.Addr(), other.Addr(), realm.Addr())

	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		body := ln.Addr().String() + "\n" + other.Addr().String() + "\n" + realm.Addr().String() + "\n"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			log.Fatalf("registry: %v", err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatalf("registry: %v", err)
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Printf("%s: shutting down", s)
	case err := <-errs:
		log.Printf("registry: serve: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func server(h http.Handler) *http.Server {
	// No write timeout: a layer may take a while on a busy machine. Clients
	// that stall on the headers are cut off.
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
}

// readOnly refuses every write: the content is what --seed put there, so a
// test cannot change what another test pulls.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// faults puts the private/ namespace and the fault repositories in front of
// the registry.
type faults struct {
	next           http.Handler
	user, password string
	slowDelay      time.Duration
	oversized      []byte
	redirectHost   string
}

const metadataChallenge = `Bearer realm="http://169.254.169.254/latest/meta-data/iam/security-credentials/",service="e2e",scope="repository:faults/realm:pull"`

// metadataRealm answers every request with a Bearer challenge whose realm is
// the cloud metadata address: a client that asks for the /v2/ challenge
// first (as most do) and follows it leaves loopback.
func metadataRealm(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("WWW-Authenticate", metadataChallenge)
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

func (f *faults) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(f.user)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(f.password)) == 1
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	repo := strings.TrimPrefix(r.URL.Path, "/v2/")
	switch {
	case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
		// As a registry with accounts answers its version check (docker
		// distribution with htpasswd, Harbor): a Basic challenge unless
		// valid credentials came. Clients that decide from it whether to
		// send credentials at all (oci-client) then send them; anonymous
		// clients go on without, and repositories outside private/ serve them.
		if !f.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="secure-defaults-e2e"`)
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	case strings.HasPrefix(repo, "private/"):
		if !f.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="secure-defaults-e2e"`)
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	case strings.HasPrefix(repo, "faults/unauthorized/"):
		w.Header().Set("WWW-Authenticate", `Basic realm="secure-defaults-e2e"`)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "no credentials are good enough here")
		return
	case strings.HasPrefix(repo, "faults/realm/"):
		metadataRealm(w, r)
		return
	case strings.HasPrefix(repo, "faults/redirect/"):
		http.Redirect(w, r, "http://"+f.redirectHost+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		return
	case strings.HasPrefix(repo, "faults/slow/"):
		t := time.NewTimer(f.slowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	case strings.HasPrefix(repo, "faults/oversized/manifests/"):
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", fmt.Sprint(len(f.oversized)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(f.oversized)
		}
		return
	}
	f.next.ServeHTTP(w, r)
}

// writeError answers in the distribution spec's error format.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": code, "message": msg}},
	})
}

// statusWriter remembers the status and size for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// logged writes one access-log line per request (never the credentials).
func logged(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		_, _, authed := r.BasicAuth()
		log.Printf("%s %s %s %s -> %d %dB %s auth=%t ua=%q", name, r.RemoteAddr, r.Method, r.URL.Path,
			sw.status, sw.bytes, time.Since(t).Round(time.Millisecond), authed, r.UserAgent())
	})
}

// putManifest stores a manifest through the registry's own API, in process.
func putManifest(reg http.Handler, repo, ref, mediaType string, body []byte) error {
	req := httptest.NewRequest(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", mediaType)
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		return errors.New("PUT manifest " + repo + ":" + ref + ": " + rec.Result().Status + " " + rec.Body.String())
	}
	return nil
}
