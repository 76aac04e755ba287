package v1alpha1

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// Decode reads one or more YAML documents (separated by "---" lines) of
// ModelDeployment objects, strictly: unknown fields are errors. It does not
// default or validate them.
func Decode(data []byte) ([]ModelDeployment, error) {
	var out []ModelDeployment
	for i, doc := range splitDocuments(data) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if tm.Kind != KindModelDeployment {
			return nil, fmt.Errorf("document %d: kind %q is not supported (want %s)", i+1, tm.Kind, KindModelDeployment)
		}
		var d ModelDeployment
		if err := yaml.UnmarshalStrict(doc, &d); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// splitDocuments splits a YAML stream at lines that are exactly "---".
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	start := 0
	for i := 0; i <= len(data); i++ {
		if i < len(data) && data[i] != '\n' {
			continue
		}
		line := bytes.TrimRight(data[start:i], "\r")
		if bytes.Equal(bytes.TrimSpace(line), []byte("---")) && len(bytes.TrimLeft(line, " \t")) == len(line) {
			docs = append(docs, nil)
		} else {
			if len(docs) == 0 {
				docs = append(docs, nil)
			}
			docs[len(docs)-1] = append(docs[len(docs)-1], data[start:min(i+1, len(data))]...)
		}
		start = i + 1
	}
	return docs
}
