// yaml-reference reads YAML documents as kubectl does and prints them as JSON:
// the reference reader for the YAML module's property test (tests/yaml_reference.rs).
//
// kubectl converts each document with sigs.k8s.io/yaml's YAMLToJSON, which
// parses with go-yaml v2 (go.yaml.in/yaml/v2), a YAML 1.1 reader.
//
// Input on stdin: a JSON array of strings, one YAML document each. Output on
// stdout: a JSON array with, for each, {"ok": <value>} or {"err": "<reason>"}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

type result struct {
	Ok  json.RawMessage `json:"ok,omitempty"`
	Err string          `json:"err,omitempty"`
}

func main() {
	var docs []string
	if err := json.NewDecoder(os.Stdin).Decode(&docs); err != nil {
		fmt.Fprintln(os.Stderr, "yaml-reference: stdin is not a JSON array of strings:", err)
		os.Exit(2)
	}
	out := make([]result, 0, len(docs))
	for _, d := range docs {
		j, err := yaml.YAMLToJSON([]byte(d))
		if err != nil {
			out = append(out, result{Err: err.Error()})
			continue
		}
		out = append(out, result{Ok: j})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "yaml-reference:", err)
		os.Exit(1)
	}
}
