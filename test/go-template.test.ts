/**
 * `--format`'s templates against Go's own text/template (the machine's toolchain), run on the same JSON with
 * docker's template functions (cli/templates: json, join, split, lower, upper, title, pad, truncate) and
 * integers decoded as int64, other numbers as float64: every template prints what Go prints, or fails where
 * Go fails.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseTemplate, TemplateError } from '../packages/cli/src/go-template.js';
import { createdSince, dockerSize, tabwrite } from '../packages/cli/src/row-format.js';
import { seededRandom } from './helpers/random.js';
import { goProgram } from './helpers/go-program.js';
import { needs } from './helpers/oracle.js';

const ORACLE = `package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"text/template"
)

// numbers decodes json.Number as int64 where it is one, else float64, throughout.
func numbers(v interface{}) interface{} {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []interface{}:
		for i := range x {
			x[i] = numbers(x[i])
		}
	case map[string]interface{}:
		for k := range x {
			x[k] = numbers(x[k])
		}
	}
	return v
}

// docker's functions (cli/templates), join taking any list as a JSON array decodes to.
var funcs = template.FuncMap{
	"json": func(v interface{}) string {
		buf := &bytes.Buffer{}
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"split": strings.Split,
	"join": func(list []interface{}, sep string) string {
		parts := make([]string, len(list))
		for i, v := range list {
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, sep)
	},
	"title": strings.Title,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(source string, prefix, suffix int) string {
		if source == "" {
			return source
		}
		return strings.Repeat(" ", prefix) + source + strings.Repeat(" ", suffix)
	},
	"truncate": func(source string, length int) string {
		if len(source) < length {
			return source
		}
		return source[:length]
	},
}

// tabwrite: each case's text through docker's table writer (tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)).
func tabwrite(texts []string) []string {
	out := make([]string, len(texts))
	for i, text := range texts {
		var buf bytes.Buffer
		w := tabwriter.NewWriter(&buf, 10, 1, 3, ' ', 0)
		w.Write([]byte(text))
		w.Flush()
		out[i] = buf.String()
	}
	return out
}

type result struct {
	Out   *string \`json:"out,omitempty"\`
	Error *string \`json:"error,omitempty"\`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "size" {
		// docker's units.HumanSizeWithPrecision(size, digits): docker images' SIZE with 3, HumanSize's 4 for df.
		var input struct {
			Digits int       \`json:"digits"\`
			Sizes  []float64 \`json:"sizes"\`
		}
		if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
			panic(err)
		}
		out := make([]string, len(input.Sizes))
		units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}
		for i, size := range input.Sizes {
			unit := 0
			for size >= 1000 && unit < len(units)-1 {
				size /= 1000
				unit++
			}
			out[i] = fmt.Sprintf("%.*g%s", input.Digits, size, units[unit])
		}
		json.NewEncoder(os.Stdout).Encode(out)
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "tabwrite" {
		var texts []string
		if err := json.NewDecoder(os.Stdin).Decode(&texts); err != nil {
			panic(err)
		}
		json.NewEncoder(os.Stdout).Encode(tabwrite(texts))
		return
	}
	var cases []struct {
		Template string          \`json:"template"\`
		Data     json.RawMessage \`json:"data"\`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	results := make([]result, len(cases))
	for i, c := range cases {
		dec := json.NewDecoder(bytes.NewReader(c.Data))
		dec.UseNumber()
		var data interface{}
		if err := dec.Decode(&data); err != nil {
			panic(err)
		}
		data = numbers(data)
		t, err := template.New("").Funcs(funcs).Parse(c.Template)
		if err == nil {
			var out bytes.Buffer
			if err = t.Execute(&out, data); err == nil {
				s := out.String()
				results[i].Out = &s
			}
		}
		if err != nil {
			s := err.Error()
			results[i].Error = &s
		}
	}
	json.NewEncoder(os.Stdout).Encode(results)
}
`;

const DATA = {
  Repository: 'alpine',
  Tag: '3.19',
  ID: 'sha256:0123456789abcdef',
  Size: 12345678,
  Labels: { b: '2', a: '1', 'org.opencontainers.image.title': 'x' },
  List: ['x', 'y', 'z'],
  Numbers: [3, 1.5, -2],
  Empty: [],
  EmptyMap: {},
  EmptyString: '',
  None: null,
  True: true,
  False: false,
  Zero: 0,
  Float: 1.5,
  Big: 1234567.5,
  Small: 0.00001,
  Nested: { Inner: { Deep: 'd' }, Arr: [{ k: 'v' }, { k: 'w' }] },
  Str: "hello, world it's-me_too 3rd",
  Uni: 'h\u00e9llo w\u00f6rld \u2028',
  Quote: 'a"b\\c\n\t\u0001\u007f',
  Env: ['PATH=/usr/bin', 'LANG=C.UTF-8'],
  Mixed: ['s', 1, true, null, { a: [1, 2] }],
};

/** Templates over DATA: printing, fields, variables, control, functions, trimming, and what fails. */
const TEMPLATES = [
  '{{.Repository}}:{{.Tag}}',
  'plain text only',
  '',
  '{{.Missing}}',
  '{{.None}}',
  '{{.List}} {{.Labels}} {{.Nested}} {{.Empty}} {{.EmptyMap}} {{.Mixed}}',
  '{{.}}',
  '{{.Size}} {{.Float}} {{.Big}} {{.Zero}} {{.Small}} {{.Numbers}}',
  '{{1.5}} {{1e6}} {{1e-5}} {{0x1F}} {{-3}} {{1.0}} {{123456.0}} {{0.0001}} {{1_000}} {{0o17}} {{017}} {{.5}}',
  '{{true}} {{false}}',
  '{{"a\\tb\\u00e9\\x41\\101"}} {{`raw\\n`}}',
  '{{json .}}',
  '{{json .Labels}} {{json .Quote}} {{json .Uni}} {{json .Float}} {{json .None}} {{json .Big}} {{json .Small}} {{json .Mixed}}',
  '{{json .Missing}}',
  '{{.Nested.Inner.Deep}} {{.Nested.Inner}}',
  '{{.Missing.Deep}}',
  '{{.None.Deep}}',
  '{{.Repository.Deep}}',
  '{{$x := .Tag}}{{$x}} {{$}}',
  '{{$x := .Tag}}{{$x = .Repository}}{{$x}}',
  '{{$.Repository}} {{$.Nested.Inner.Deep}}',
  '{{$y}}',
  '{{if false}}{{$y}}{{end}}',
  '{{if .True}}{{$x := 1}}{{$x}}{{end}}{{$x}}',
  '{{range $i, $e := .List}}{{end}}{{$e}}',
  '{{$x := 1}}{{with $y := 2}}{{$x}}{{$y}}{{end}}{{$x}}',
  '{{$z = 3}}',
  '{{if true}}{{$x := 1}}{{else}}{{$x}}{{end}}',
  '{{if .True}}yes{{else}}no{{end}} {{if .False}}yes{{else}}no{{end}}',
  '{{if .Empty}}a{{else if .EmptyString}}b{{else if .Zero}}c{{else if .None}}d{{else if .Missing}}e{{else}}f{{end}}',
  '{{if .List}}L{{end}}{{if .Labels}}M{{end}}{{if .EmptyMap}}E{{end}}{{if .Float}}F{{end}}',
  '{{if $x := .Tag}}{{$x}}{{end}}',
  '{{with .Nested.Inner}}{{.Deep}}{{end}} {{with .Missing}}x{{else}}none{{end}}',
  '{{range .List}}[{{.}}]{{end}}',
  '{{range $i, $v := .List}}{{$i}}={{$v}},{{end}}',
  '{{range $v := .List}}{{$v}}{{end}}',
  '{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}',
  '{{range .Empty}}x{{else}}empty{{end}}',
  '{{range .Missing}}x{{else}}missing{{end}}',
  '{{range .None}}x{{else}}none{{end}}',
  '{{range .Tag}}x{{end}}',
  '{{range .List}}{{if eq . "y"}}{{break}}{{end}}{{.}}{{end}}',
  '{{range .List}}{{if eq . "y"}}{{continue}}{{end}}{{.}}{{end}}',
  '{{range .Nested.Arr}}{{.k}}{{$.Tag}}{{end}}',
  '{{break}}',
  '  {{- .Tag -}}  \n  {{.Repository}} {{- "x" }} {{ "y" -}} z',
  '{{/* a comment */}}x{{- /* trimmed */ -}}  y',
  '{{-3}}',
  '{{len .List}} {{len .Labels}} {{len .Uni}} {{len .EmptyString}}',
  '{{len .Missing}}',
  '{{len .Size}}',
  '{{index .List 1}} {{index .Labels "a"}} {{index .Labels "zz"}} {{index .Nested "Arr" 0 "k"}}',
  '{{index .List 5}}',
  '{{index .Tag 0}}',
  '{{print .Repository .Tag}} {{print 1 2}} {{print "a" 1 2 "b"}} {{print .List .Size}} {{print}}',
  '{{println .Repository 1 2}}',
  '{{printf "%s-%v-%d" .Repository .List .Size}} {{printf "%q" .Quote}} {{printf "%10s|%-6s|%05d|%x|%X" .Tag .Tag 42 255 "hi"}} {{printf "%t %%" .True}}',
  '{{printf "%d" .Tag}} {{printf "%s"}} {{printf "%s" .Size .Float}} {{printf "%s|%s|%s" .True .Numbers .None}}',
  '{{eq .Missing .None}} {{eq .None .Tag}} {{ne .Missing "x"}}',
  '{{printf "%.3s" .Repository}} {{printf "%v" .Float}} {{printf "%v" .None}} {{printf "%q" .Uni}}',
  '{{.Tag | printf "%s!"}} {{.List | len}} {{"abc" | upper | lower}}',
  '{{eq .Tag "3.19"}} {{eq .Tag "x" "3.19"}} {{ne .Repository "alpine"}} {{eq .Size 12345678}} {{eq .True true}}',
  '{{lt .Tag "4"}} {{le 1 2}} {{gt .Size 5}} {{ge .Repository "alpine"}} {{lt "a" "B"}}',
  '{{eq .List .List}}',
  '{{eq .Missing "x"}}',
  '{{lt .True .False}}',
  '{{eq .Tag 3}}',
  '{{and .True .Tag}} {{and .True .False .Tag}} {{or .False .EmptyString .Tag}} {{or .False .Zero}} {{not .True}} {{not .Empty}}',
  '{{and 1 0 .Missing.X}} {{or 1 .Missing.X}}',
  '{{not}}',
  '{{(index .Nested "Inner").Deep}} {{(len .List)}} {{printf "%d" (len .List)}}',
  '{{join .List ", "}} {{join .Env ";"}} {{split "a,b,c" ","}} {{len (split .Tag ".")}}',
  '{{upper .Uni}} {{lower "ÀB"}} {{title .Str}} {{title .Uni}}',
  '{{pad .Tag 2 3}}| {{pad "" 2 2}}| {{truncate .Repository 3}} {{truncate .Repository 30}}',
  '{{nosuchfunction .Tag}}',
  '{{.Tag .Repository}}',
  '{{.Tag | .Repository}}',
  '{{if .True}}unterminated',
  '{{end}}',
  '{{else}}',
  '{{.Tag',
  '{{nil}}',
  '{{"unterminated}}',
  '{{$x := 1}}{{if .True}}{{$x := 2}}{{$x}}{{end}}{{$x}}',
  '{{$x := 1}}{{if .True}}{{$x = 2}}{{end}}{{$x}}',
  '{{range $i, $e := .Mixed}}{{$i}}:{{$e}} {{end}}',
  '{{with $x := .Nested}}{{$x.Inner.Deep}}{{end}}',
  '{{if and .True (eq .Tag "3.19")}}both{{end}}',
  '{{.Labels.a}}{{.Labels.b}}',
  '{{range .Numbers}}{{.}} {{end}}{{range .Numbers}}{{printf "%v|" .}}{{end}}',
  '{{"\\"}}"}}',
  '{{range .Labels}}{{.}}{{end}} {{with .EmptyString}}x{{else}}y{{end}} {{if not .Missing}}m{{end}}',
  '{{printf "%v %v" .Labels .Nested}} {{index .Mixed 4 "a" 1}} {{json .Empty}} {{json .EmptyMap}} {{index .Labels "org.opencontainers.image.title"}}',
  '{{range $i, $a := .Nested.Arr}}{{range $j, $b := $.List}}{{$i}}{{$j}}{{$a.k}}{{$b}} {{end}}{{end}}',
  '{{if\n.True}}multi\nline{{end}}{{- "\n" -}}',
  '{{ .Tag -}}\n\n{{- .Repository }}',
  '{{with .Nested}}{{with .Inner}}{{.Deep}}{{$.Tag}}{{end}}{{end}}',
  '{{range .List}}{{.}}{{else}}none{{end}}{{range $x := .Empty}}{{$x}}{{end}}',
  '{{.List.x}}',
  '{{index .List -1}}',
  '{{index .Labels 1}}',
  '{{json (index .Nested "Arr")}} {{(index .Nested "Arr") | len}}',
  '{{if eq .Tag "3.19" "x"}}in{{end}} {{if ne .Size 1}}ne{{end}}',
  '{{printf "%-12s|%12v|" .Repository .Size}}{{printf "%5.2s|" .Tag}}',
  '{{ .Tag }}{{	.Repository	}}',
];

interface Verdict {
  out?: string;
  error?: string;
}

function go(cases: Array<{ template: string; data: unknown }>): Verdict[] {
  return JSON.parse(execFileSync(goProgram('go-text-template', ORACLE), { input: JSON.stringify(cases), encoding: 'utf8' })) as Verdict[];
}

function ours(template: string, data: unknown): Verdict {
  try {
    return { out: parseTemplate(template)(data) };
  } catch (error) {
    if (!(error instanceof TemplateError)) throw error;
    return { error: error.message };
  }
}

describe.skipIf(!needs('go'))("--format's templates against Go's text/template", () => {
  it("write sizes as docker does (units.HumanSizeWithPrecision: Go's %.3g for images, %.4g for df), and times since as docker's units.HumanDuration", () => {
    const random = seededRandom(7);
    const sizes = [0, 1, 999, 1000, 1001, 1024, 9995, 99_949, 99_950, 999_499, 999_500, 999_949, 999_950, 999_999, 1e6, 1_048_576, 12_345_678, 3.42e9, 1e21, 1e27, 1e30];
    for (let n = 0; n < 500; n++) sizes.push(Math.floor(10 ** (random() * 13)));
    for (const digits of [3, 4]) {
      const expected = JSON.parse(execFileSync(goProgram('go-text-template', ORACLE), ['size'], { input: JSON.stringify({ digits, sizes }), encoding: 'utf8' })) as string[];
      expect(sizes.map((size) => dockerSize(size, digits))).toEqual(expected);
    }
    const now = Date.UTC(2026, 11, 6);
    const ago = (seconds: number) => createdSince(new Date(now - seconds * 1000), now);
    expect([0.5, 1, 59, 60, 119, 120, 3599, 3600 * 1.4, 3600 * 1.6, 3600 * 47.4, 3600 * 48, 86_400 * 13.9, 86_400 * 14, 86_400 * 59, 86_400 * 60, 86_400 * 729, 86_400 * 730].map(ago)).toEqual([
      'Less than a second ago', '1 second ago', '59 seconds ago', 'About a minute ago', 'About a minute ago', '2 minutes ago', '59 minutes ago', 'About an hour ago',
      '2 hours ago', '47 hours ago', '2 days ago', '13 days ago', '2 weeks ago', '8 weeks ago', '2 months ago', '24 months ago', '2 years ago',
    ]);
    expect(createdSince(undefined)).toBe('N/A');
  });

  it("align tables as Go's tabwriter does with docker's settings", () => {
    const random = seededRandom(13);
    const words = ['', 'a', 'alpine', 'sha256:0123456789ab', 'REPOSITORY', 'h\u00e9llo', 'x y', '<none>', 'About an hour ago', '12.3MB'];
    const texts: string[] = ['', 'no tabs\n', 'a\tb\n', 'a\tb', '\t\t\n', 'REPOSITORY\tTAG\n'];
    for (let n = 0; n < 300; n++) {
      const lines = Array.from({ length: 1 + Math.floor(random() * 6) }, () => Array.from({ length: Math.floor(random() * 5) }, () => words[Math.floor(random() * words.length)]!).join('\t') + (random() < 0.3 ? '\t' : ''));
      texts.push(lines.join('\n') + (random() < 0.8 ? '\n' : ''));
    }
    const expected = JSON.parse(execFileSync(goProgram('go-text-template', ORACLE), ['tabwrite'], { input: JSON.stringify(texts), encoding: 'utf8' })) as string[];
    const mismatches = texts.flatMap((text, i) => (tabwrite(text) === expected[i] ? [] : [`${JSON.stringify(text)}\n  go:     ${JSON.stringify(expected[i])}\n  strata: ${JSON.stringify(tabwrite(text))}`]));
    expect(mismatches.slice(0, 5).join('\n')).toBe('');
  });

  it('take any JSON as their data, as Go does', () => {
    const roots: unknown[] = [['a', 'b'], 'text', 7, 2.5, null, true, {}, [{ Name: 'n' }]];
    const templates = ['{{.}}', '{{json .}}', '{{len .}}', '{{range .}}<{{.}}>{{end}}', '{{if .}}t{{else}}f{{end}}', '{{index . 0}}', '{{.Name}}', '{{with .}}w{{.}}{{end}}', '{{printf "%v|%s" . .}}'];
    const cases = roots.flatMap((data) => templates.map((template) => ({ template, data })));
    const expected = go(cases);
    const mismatches = cases.flatMap(({ template, data }, i) => {
      const want = expected[i]!;
      const got = ours(template, data);
      const same = want.error !== undefined ? got.error !== undefined : got.out === want.out;
      return same ? [] : [`${JSON.stringify(template)} on ${JSON.stringify(data)}\n  go:    ${JSON.stringify(want)}\n  strata: ${JSON.stringify(got)}`];
    });
    expect(mismatches.join('\n')).toBe('');
  });

  it('print what Go prints, and fail where Go fails', () => {
    const expected = go(TEMPLATES.map((template) => ({ template, data: DATA })));
    const mismatches: string[] = [];
    TEMPLATES.forEach((template, i) => {
      const want = expected[i]!;
      const got = ours(template, DATA);
      const same = want.error !== undefined ? got.error !== undefined : got.out === want.out;
      if (!same) mismatches.push(`${JSON.stringify(template)}\n  go:    ${JSON.stringify(want)}\n  strata: ${JSON.stringify(got)}`);
    });
    expect(mismatches.join('\n')).toBe('');
  });
});
