package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// missingTool skips the test, or fails it under CI=true, where .ci/run
// installs every tool.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: .ci/run should have installed it)", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd   string // upper case
	Args  string
	Stage int // index of the FROM it belongs to
}

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	stage := -1
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{cmd, strings.TrimSpace(args), stage})
	}
	return out
}

// buildCommand returns the environment and arguments of the Dockerfile's
// `go build`, with its build arguments filled in for this machine.
func buildCommand(t *testing.T, ins []instruction, version, out string) (env, args []string, dockerOut string) {
	t.Helper()
	for _, in := range ins {
		if in.Cmd != "RUN" || !strings.Contains(in.Args, "go build") {
			continue
		}
		words := shellWords(t, in.Args)
		for len(words) > 0 && strings.HasPrefix(words[0], "--mount=") {
			words = words[1:]
		}
		vars := map[string]string{"VERSION": version, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH}
		expand := func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
		i := 0
		for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
			env = append(env, expand(words[i]))
		}
		if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
			t.Fatalf("the build RUN is not `ENV=... go build ...`: %q", in.Args)
		}
		for _, w := range words[i+2:] {
			args = append(args, expand(w))
		}
		for j, a := range args {
			if a == "-o" && j+1 < len(args) {
				dockerOut = args[j+1]
				args[j+1] = out
			}
		}
		return env, args, dockerOut
	}
	t.Fatal("no RUN ... go build in the Dockerfile")
	return nil, nil, ""
}

// shellWords splits a simple shell command line (quotes, no expansions).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == ';' || c == '&' || c == '|':
			t.Fatalf("the build RUN must be one command: %q", s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

var (
	imageOnce sync.Once
	imageBin  string
	imageErr  error
)

const testVersion = "v0.0.0-deploytest"

// imageBinary builds cmd/shoal as the Dockerfile does, from a copy of the
// build context filtered by Dockerfile.dockerignore, into a directory
// anyone may read (the non-root test runs it). Built once per process.
func imageBinary(t *testing.T) string {
	t.Helper()
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-image-")
		if err != nil {
			imageErr = err
			return
		}
		os.Chmod(dir, 0o755)
		ctx := filepath.Join(dir, "context")
		if imageErr = copyContext(t, "..", ctx); imageErr != nil {
			return
		}
		imageBin = filepath.Join(dir, "shoal")
		env, args, _ := buildCommand(t, parseDockerfile(t), testVersion, imageBin)
		cmd := exec.Command("go", append([]string{"build"}, args...)...)
		cmd.Dir = ctx
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			imageErr = fmt.Errorf("the Dockerfile's build fails on its context: go build %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageBin
}

// dockerignore reads Dockerfile.dockerignore's patterns.
func dockerignore(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var ps []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "!") {
				t.Fatalf("Dockerfile.dockerignore: this test does not handle exceptions (%s)", l)
			}
			ps = append(ps, strings.TrimPrefix(path.Clean(l), "/"))
		}
	}
	return ps
}

// ignored reports whether the context path p (slash separated, relative)
// is excluded by a pattern, with the .dockerignore rules this project uses:
// path.Match per pattern, "**/" matching any number of directories, and a
// matched directory excluding all beneath it.
func ignored(patterns []string, p string) bool {
	parts := strings.Split(p, "/")
	for _, pat := range patterns {
		for n := 1; n <= len(parts); n++ {
			prefix := strings.Join(parts[:n], "/")
			if ok, _ := path.Match(pat, prefix); ok {
				return true
			}
			if rest, ok := strings.CutPrefix(pat, "**/"); ok {
				for i := 0; i < n; i++ {
					if ok, _ := path.Match(rest, strings.Join(parts[i:n], "/")); ok {
						return true
					}
				}
			}
		}
	}
	return false
}

func copyContext(t *testing.T, src, dst string) error {
	patterns := dockerignore(t)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return os.MkdirAll(dst, 0o755)
		}
		if ignored(patterns, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil // links and the like: the build needs none
	})
}

// TestDockerfile checks the Dockerfile's shape: pinned bases, a Go image as
// new as go.mod asks, a distroless or scratch final stage running as a
// numeric non-root user, the binary as the entrypoint, and COPY sources that
// exist in the filtered context.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t)
	var froms []string
	final := 0
	for _, in := range ins {
		if in.Cmd == "FROM" {
			fields := strings.Fields(in.Args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				fields = fields[1:]
			}
			froms = append(froms, fields[0])
			final = in.Stage
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	for _, img := range froms {
		name, tag, _ := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":")
		if tag == "" || tag == "latest" {
			if !strings.Contains(img, "@sha256:") {
				t.Errorf("FROM %s: pin a tag or digest (%s)", img, name)
			}
		}
	}
	if !regexp.MustCompile(`^(gcr\.io/distroless/static-debian\d+:nonroot|scratch)$`).MatchString(froms[len(froms)-1]) {
		t.Errorf("final stage FROM %s: want distroless static nonroot or scratch", froms[len(froms)-1])
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil || !strings.HasPrefix(froms[0], "golang:"+string(goLine[1])) {
		t.Errorf("build stage FROM %s: want golang:%s (go.mod)", froms[0], goLine[1])
	}

	var user, entrypoint string
	var copyFrom []string
	for _, in := range ins {
		switch {
		case in.Cmd == "USER" && in.Stage == final:
			user = in.Args
		case in.Cmd == "ENTRYPOINT" && in.Stage == final:
			entrypoint = in.Args
		case in.Cmd == "COPY" && strings.HasPrefix(in.Args, "--from="):
			copyFrom = strings.Fields(in.Args)
		case in.Cmd == "COPY":
			srcs := strings.Fields(in.Args)
			for _, s := range srcs[:len(srcs)-1] {
				p := filepath.Join("..", s)
				if _, err := os.Stat(p); err != nil {
					t.Errorf("COPY %s: %v", s, err)
				}
				if s != "." && ignored(dockerignore(t), s) {
					t.Errorf("COPY %s: Dockerfile.dockerignore excludes it", s)
				}
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) {
		t.Errorf("final stage USER %q: want a numeric non-root user", user)
	}
	if entrypoint != `["/shoal"]` {
		t.Errorf(`ENTRYPOINT %s: want ["/shoal"]`, entrypoint)
	}
	env, args, out := buildCommand(t, ins, testVersion, "OUT")
	if !slices.Contains(env, "CGO_ENABLED=0") || !slices.Contains(args, "-trimpath") {
		t.Errorf("build: env %v args %v: want CGO_ENABLED=0 and -trimpath", env, args)
	}
	ldflags := args[slices.Index(args, "-ldflags")+1]
	for _, f := range []string{"-s", "-w", "-X", "main.version=" + testVersion} {
		if !slices.Contains(strings.Fields(ldflags), f) {
			t.Errorf("-ldflags %q lacks %s", ldflags, f)
		}
	}
	if len(copyFrom) != 3 || copyFrom[1] != out || copyFrom[2] != "/shoal" {
		t.Errorf("COPY %v: want the built %s as /shoal", copyFrom, out)
	}
}

// TestImageBinary builds the binary as the image does and checks that it
// is static (nothing for a dynamic loader to do, as distroless/static has
// no libc), stripped, reports the version it was given, and runs as the
// image's non-root user: an edge starts, serves /readyz and stops on
// SIGTERM.
func TestImageBinary(t *testing.T) {
	bin := imageBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v: the binary is dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("the binary has a symbol table: -s did not apply")
	}

	// The image's user; a test running as someone else already is not root.
	uid, gid := 65532, 65532
	asUser := func(cmd *exec.Cmd) {
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
	}
	out, err := func() ([]byte, error) { c := exec.Command(bin, "version"); asUser(c); return c.CombinedOutput() }()
	if err != nil || strings.TrimSpace(string(out)) != "shoal "+testVersion {
		t.Fatalf("shoal version: %q, %v; want shoal %s", out, err, testVersion)
	}

	dir, err := os.MkdirTemp("", "shoal-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if os.Geteuid() == 0 {
		os.Chown(dir, uid, gid)
	}
	c := exec.Command(bin, "certs", "--dir", filepath.Join(dir, "tls"))
	asUser(c)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("shoal certs as uid %d: %v\n%s", uid, err, out)
	}
	admin := freePort(t)
	edge := exec.Command(bin, "edge", "--origin=http://127.0.0.1:9", "--listen=127.0.0.1:0", "--peer-listen=127.0.0.1:0",
		fmt.Sprintf("--admin-listen=127.0.0.1:%d", admin), "--tls-dir="+filepath.Join(dir, "tls"),
		"--data-dir="+filepath.Join(dir, "data"), "--disk-cache=64MiB", "--log-format=text")
	asUser(edge)
	runUntilReady(t, edge, admin)
}

// runUntilReady starts an edge, waits for /readyz, then stops it with
// SIGTERM and wants a clean exit.
func runUntilReady(t *testing.T, cmd *exec.Cmd, admin int) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("shoal %s:\n%s", strings.Join(cmd.Args[1:], " "), &out)
		}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", admin)
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the edge exited: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not 200 after 20 s", url)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("after SIGTERM: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Errorf("the edge did not stop within 40 s of SIGTERM")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// unit is a parsed systemd unit: section → key → values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, file string) unit {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "["):
			section = strings.Trim(l, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", file, l)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// readEnv reads a KEY=VALUE environment file as systemd does (no quotes are
// used in ours).
func readEnv(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.ContainsAny(v, `"'$`) {
			t.Fatalf("%s: line %q: want KEY=VALUE without quotes or $", file, l)
		}
		env[k] = v
	}
	return env
}

// TestSystemdUnit checks the unit's settings, has systemd-analyze verify
// it (unknown keys, bad values, a missing binary) and rate its exposure.
func TestSystemdUnit(t *testing.T) {
	const file = "systemd/shoal-edge.service"
	u := parseUnit(t, file)
	for _, kv := range []string{
		"Service/Type=exec", "Service/EnvironmentFile=/etc/shoal/edge.env", "Service/StateDirectory=shoal",
		"Service/KillSignal=SIGTERM", "Service/DynamicUser=yes", "Service/NoNewPrivileges=yes",
		"Service/ProtectSystem=strict", "Service/ProtectHome=yes", "Service/PrivateTmp=yes",
		"Service/CapabilityBoundingSet=", "Service/RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"Service/SystemCallFilter=~@privileged", "Service/MemoryDenyWriteExecute=yes", "Service/LockPersonality=yes",
		"Install/WantedBy=multi-user.target",
	} {
		sk, want, _ := strings.Cut(kv, "=")
		section, key, _ := strings.Cut(sk, "/")
		if !slices.Contains(u[section][key], want) {
			t.Errorf("[%s] %s=%s: got %q", section, key, want, u[section][key])
		}
	}
	execStart := strings.Fields(u.get("Service", "ExecStart"))
	if len(execStart) < 2 || execStart[0] != "/usr/local/bin/shoal" || execStart[1] != "edge" ||
		!slices.Contains(execStart, "--data-dir=/var/lib/"+u.get("Service", "StateDirectory")) || !slices.Contains(execStart, "--tls-dir=%d") ||
		!slices.Contains(execStart, "--strict-env") {
		t.Errorf("ExecStart=%s: want /usr/local/bin/shoal edge with the state directory, the credentials and --strict-env", execStart)
	}
	var creds []string
	for _, c := range u["Service"]["LoadCredential"] {
		name, src, _ := strings.Cut(c, ":")
		creds = append(creds, name)
		if src != "/etc/shoal/tls/"+name {
			t.Errorf("LoadCredential=%s: want it from /etc/shoal/tls/%s", c, name)
		}
	}
	if slices.Sort(creds); !slices.Equal(creds, []string{"ca.crt", "node.crt", "node.key"}) {
		t.Errorf("credentials %v: --tls-dir needs ca.crt, node.crt, node.key", creds)
	}
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	env := readEnv(t, "systemd/edge.env.example")
	delay, err1 := time.ParseDuration(env["SHOAL_DRAIN_DELAY"])
	drain, err2 := time.ParseDuration(env["SHOAL_DRAIN_TIMEOUT"])
	if err != nil || err1 != nil || err2 != nil || stop <= delay+drain {
		t.Errorf("TimeoutStopSec=%v must exceed SHOAL_DRAIN_DELAY %v + SHOAL_DRAIN_TIMEOUT %v", stop, delay, drain)
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		missingTool(t, "systemd-analyze not found (Debian package systemd)")
	}
	// Verify a copy whose ExecStart names a binary that exists here, so
	// that the check that it is executable passes for the right reason.
	dir := t.TempDir()
	b, _ := os.ReadFile(file)
	copied := filepath.Join(dir, "shoal-edge.service")
	if err := os.WriteFile(copied, bytes.ReplaceAll(b, []byte("/usr/local/bin/shoal"), []byte(imageBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(sa, "verify", copied)
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		// systemd-analyze verify exits 0 on unknown keys: any output is a finding.
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = runTool(sa, "security", "--offline=yes", "--threshold=20", copied)
	exposure := -1.0
	if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out); m != nil {
		exposure, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if err != nil || exposure < 0 || exposure > 2.0 {
		t.Errorf("systemd-analyze security: %v, exposure %.1f (want at most 2.0, \"OK\"):\n%s", err, exposure, out)
	}
}

func runTool(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_COLORS=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// edgeFlags lists the flags `shoal edge` has, from its own help.
func edgeFlags(t *testing.T) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(imageBinary(t), "edge", "-h")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		flags[m[1]] = true
	}
	if !flags["origin"] || !flags["peers"] {
		t.Fatalf("could not read the flags from `shoal edge -h`:\n%s", &out)
	}
	return flags
}

// checkEnvFile checks that every SHOAL_ variable of file is a flag of the
// edge (the binary ignores unknown ones silently), and that the edge starts
// with the file as its environment, the unit's flags and, so as to run
// here, loopback listeners.
func checkEnvFile(t *testing.T, file string, flags map[string]bool) map[string]string {
	t.Helper()
	env := readEnv(t, file)
	var environ []string
	for k, v := range env {
		flag, ok := strings.CutPrefix(k, "SHOAL_")
		switch {
		case ok && !flags[strings.ToLower(strings.ReplaceAll(flag, "_", "-"))]:
			t.Errorf("%s: %s is not a flag of shoal edge: it would be ignored", file, k)
		case !ok && !strings.HasPrefix(k, "OTEL_"):
			t.Errorf("%s: %s is neither SHOAL_* nor OTEL_*", file, k)
		}
		if k == "SHOAL_DISK_CACHE" {
			v = "64MiB" // this machine's disk is not the site's
		}
		environ = append(environ, k+"="+v)
	}
	dir := t.TempDir()
	if out, err := exec.Command(imageBinary(t), "certs", "--dir", filepath.Join(dir, "tls")).CombinedOutput(); err != nil {
		t.Fatalf("shoal certs: %v\n%s", err, out)
	}
	admin := freePort(t)
	cmd := exec.Command(imageBinary(t), "edge", "--tls-dir="+filepath.Join(dir, "tls"), "--data-dir="+filepath.Join(dir, "data"),
		"--listen=127.0.0.1:0", "--peer-listen=127.0.0.1:0", fmt.Sprintf("--admin-listen=127.0.0.1:%d", admin), "--drain-delay=0s")
	cmd.Env = append(os.Environ(), environ...)
	runUntilReady(t, cmd, admin)
	return env
}

func TestEnvironmentFiles(t *testing.T) {
	flags := edgeFlags(t)
	t.Run("edge.env.example", func(t *testing.T) {
		env := checkEnvFile(t, "systemd/edge.env.example", flags)
		if !slices.Contains(strings.Split(env["SHOAL_PEERS"], ","), env["SHOAL_ADVERTISE"]) {
			t.Errorf("SHOAL_ADVERTISE %s is not in SHOAL_PEERS", env["SHOAL_ADVERTISE"])
		}
	})
	t.Run("three-sites", func(t *testing.T) {
		files, _ := filepath.Glob("examples/three-sites/site-*.env")
		if len(files) != 3 {
			t.Fatalf("want three sites, got %v", files)
		}
		var peers string
		var advertised []string
		for _, f := range files {
			env := checkEnvFile(t, f, flags)
			if peers == "" {
				peers = env["SHOAL_PEERS"]
			}
			if env["SHOAL_PEERS"] != peers {
				t.Errorf("%s: SHOAL_PEERS=%s differs from the others' %s: placement would disagree", f, env["SHOAL_PEERS"], peers)
			}
			for _, k := range []string{"SHOAL_SEGMENT_SIZE", "SHOAL_SHARDS"} {
				if _, ok := env[k]; ok {
					t.Errorf("%s: %s must be the same everywhere; the examples keep the default", f, k)
				}
			}
			advertised = append(advertised, env["SHOAL_ADVERTISE"])
		}
		ps := strings.Split(peers, ",")
		slices.Sort(ps)
		slices.Sort(advertised)
		if !slices.Equal(ps, advertised) {
			t.Errorf("the sites advertise %v, the peer list is %v: each site must be one entry", advertised, ps)
		}
	})
}

// TestMain removes the binary the tests shared.
func TestMain(m *testing.M) {
	code := m.Run()
	if imageBin != "" {
		os.RemoveAll(filepath.Dir(imageBin))
	}
	os.Exit(code)
}
