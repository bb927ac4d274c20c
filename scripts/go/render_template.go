// Renders Ollama-style Go text/template TEMPLATEs for tierforge's golden files.
//
// Reads {"template": "...", "cases": [{"messages": [{"role": "...", "content": "..."}]}]} on
// stdin and writes {"outputs": ["...", ...]} on stdout. The data passed to the template mirrors
// what Ollama gives a chat template: .Messages (each with .Role and .Content) and .System.
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Case struct {
	Messages []Message `json:"messages"`
}

type Input struct {
	Template string `json:"template"`
	Cases    []Case `json:"cases"`
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	tmpl, err := template.New("ollama").Parse(in.Template)
	if err != nil {
		panic(err)
	}
	outputs := []string{}
	for _, c := range in.Cases {
		system := []string{}
		for _, m := range c.Messages {
			if m.Role == "system" {
				system = append(system, m.Content)
			}
		}
		var b strings.Builder
		data := map[string]any{"Messages": c.Messages, "System": strings.Join(system, "\n\n")}
		if err := tmpl.Execute(&b, data); err != nil {
			panic(err)
		}
		outputs = append(outputs, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"outputs": outputs})
}
