package pack_test

import (
	"context"
	"fmt"
	"log"

	"github.com/shoal-ml/shoal/internal/pack"
)

// Build the image of a model repository with a static shoal binary and
// write it as a tarball for `docker load`.
func ExampleImage() {
	img, err := pack.Image(context.Background(), pack.Options{
		ModelDir: "examples/models",
		Binary:   "bin/shoal", // CGO_ENABLED=0 go build -o bin/shoal ./cmd/shoal
		Progress: func(line string) { log.Print(line) },
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := pack.WriteTarballFile("iris.tar", "iris:1", img); err != nil {
		log.Fatal(err)
	}
	d, _ := img.Digest()
	fmt.Println("docker load -i iris.tar  #", d)
}

// Write a Docker build context for a model with custom code (the python
// or http backend), to build with the user's own docker.
func ExampleContext() {
	_, err := pack.Context(context.Background(), pack.ContextOptions{
		ModelDir:     "models",
		Binary:       "bin/shoal",
		PythonBase:   "python:3.11-slim",
		Requirements: "requirements.txt",
		Dir:          "build/iris",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("docker build -t iris-flask:1 build/iris")
}
