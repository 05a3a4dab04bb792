// dockerfile-lint: Docker's own Dockerfile parser and build checks (`docker build --check`, BuildKit's
// dockerfile2llb linter) run offline: base images are not resolved, every one gets an empty
// linux/amd64 config. Exit status 1 on any warning or error.
//
//	cd deploy/dockerfile-lint && go build -o /tmp/dockerfile-lint . && /tmp/dockerfile-lint ../../docker/Dockerfile
//
// (tools/scripts/ci-deploy.sh builds it into its tools folder; the BuildKit version is pinned in go.mod.)
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	digest "github.com/opencontainers/go-digest"
)

// offline answers every base image lookup without a registry.
type offline struct{}

func (offline) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, "", []byte(`{"architecture":"amd64","os":"linux","config":{}}`), nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-lint DOCKERFILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		if !lint(path) {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func lint(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return false
	}
	ctx := context.Background()
	src := llb.Scratch()
	sm := llb.NewSourceMap(&src, path, "Dockerfile", data)
	if sm.Definition, err = src.Marshal(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return false
	}
	res, err := dockerfile2llb.DockerfileLint(ctx, data, dockerfile2llb.ConvertOpt{SourceMap: sm, MetaResolver: offline{}})
	if err != nil {
		fmt.Printf("%s: %v\n", path, err)
		return false
	}
	for _, w := range res.Warnings {
		line := int32(0)
		if len(w.Location.Ranges) > 0 {
			line = w.Location.Ranges[0].Start.Line
		}
		fmt.Printf("%s:%d: %s: %s\n", path, line, w.RuleName, w.Detail)
	}
	if res.Error != nil {
		fmt.Printf("%s: error: %s\n", path, res.Error.Message)
		return false
	}
	fmt.Printf("%s: %d warnings (BuildKit dockerfile checks)\n", path, len(res.Warnings))
	return len(res.Warnings) == 0
}
