package validate

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dockerfile is deploy/Dockerfile as instructions: keyword and arguments,
// continuation lines joined.
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	var out [][2]string
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, "deploy/Dockerfile")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur += s + " "
			continue
		}
		cur += line
		kw, args, _ := strings.Cut(cur, " ")
		out = append(out, [2]string{strings.ToUpper(kw), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// The image: multi-stage, a static binary (CGO off), a distroless final
// stage running as a non-root user, and a build stage that copies every
// package the binary needs (so that a new package of the module cannot be
// forgotten), none of them excluded by the Dockerfile's .dockerignore.
func TestDockerfile(t *testing.T) {
	var froms, users, copies []string
	build := ""
	for _, in := range dockerfile(t) {
		switch in[0] {
		case "FROM":
			froms = append(froms, in[1])
		case "USER":
			users = append(users, in[1])
		case "COPY":
			if !strings.Contains(in[1], "--from=") {
				f := strings.Fields(in[1])
				copies = append(copies, f[:len(f)-1]...)
			}
		case "RUN":
			if strings.Contains(in[1], "go build") {
				build = in[1]
			}
		}
	}
	if len(froms) < 2 {
		t.Errorf("not multi-stage: FROM %v", froms)
	}
	if last := froms[len(froms)-1]; !strings.Contains(last, "distroless/static") && last != "scratch" {
		t.Errorf("the final stage is %q, want distroless/static or scratch for a static binary", last)
	}
	if len(users) == 0 || slices.Contains([]string{"root", "0", "0:0"}, users[len(users)-1]) {
		t.Errorf("the image runs as %v, want a non-root user", users)
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "./cmd/twosell") {
		t.Errorf("the build %q is not a static build of ./cmd/twosell", build)
	}

	// Every package of the module that the binary imports is copied.
	out, err := exec.Command("go", "-C", root, "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.ImportPath}}{{end}}{{end}}", "./cmd/twosell").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/twosell/twosell/"
	for pkg := range strings.FieldsSeq(string(out)) {
		dir := strings.TrimPrefix(pkg, module)
		top, _, _ := strings.Cut(dir, "/")
		if !slices.Contains(copies, top) && !slices.Contains(copies, "./"+top) && !slices.Contains(copies, ".") {
			t.Errorf("the binary needs package %s, but the Dockerfile copies only %v", pkg, copies)
		}
	}
	ignore := string(readRepoFile(t, "deploy/Dockerfile.dockerignore"))
	for _, c := range copies {
		c = filepath.Clean(c)
		if strings.Contains(ignore, "\n*\n") && !strings.Contains(ignore, "!"+c) {
			t.Errorf("deploy/Dockerfile.dockerignore keeps %s out of the build context", c)
		}
	}
}
