/**
 * `--format`'s forms as docker's listings read them: json, `table` (docker's columns or a template's, with a
 * header row), a template per row; `\t` and `\n` typed as two characters; what an image holds made safe for
 * the terminal while the template's own tabs and newlines stay.
 */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../src/format.js';
import { formatRows, goTime, terminalSafe } from '../src/row-format.js';

const listing = {
  rows: [
    { Repository: 'alpine', Tag: '3.19', Size: '7.8MB' },
    { Repository: 'example.com/a-longer-name', Tag: 'latest', Size: '120MB' },
  ],
  headers: { Repository: 'REPOSITORY', Tag: 'TAG', Size: 'SIZE' },
  table: '{{.Repository}}\t{{.Tag}}\t{{.Size}}',
};

describe('--format', () => {
  it('runs a template per row, each ending in a newline, with \\t and \\n typed as two characters', () => {
    expect(formatRows('{{.Repository}}:{{.Tag}}', listing)).toBe('alpine:3.19\nexample.com/a-longer-name:latest\n');
    expect(formatRows('{{.Tag}}\\t{{.Size}}\\n', listing)).toBe('3.19\t7.8MB\n\nlatest\t120MB\n\n');
    expect(formatRows('  {{.Tag}}  ', listing)).toBe('3.19\nlatest\n'); // spaces around it trimmed, as docker trims them
  });

  it('writes json as one object per row, keys in order', () => {
    expect(formatRows('json', listing)).toBe('{"Repository":"alpine","Size":"7.8MB","Tag":"3.19"}\n{"Repository":"example.com/a-longer-name","Size":"120MB","Tag":"latest"}\n');
  });

  it('writes a table with a header row: the default columns for table alone, else the template\'s', () => {
    expect(formatRows('table', listing)).toBe(['REPOSITORY                  TAG       SIZE', 'alpine                      3.19      7.8MB', 'example.com/a-longer-name   latest    120MB', ''].join('\n'));
    expect(formatRows('table {{.Size}}\\t{{.Tag}}', listing)).toBe(['SIZE      TAG', '7.8MB     3.19', '120MB     latest', ''].join('\n'));
    expect(formatRows('table', { ...listing, rows: [] })).toBe('REPOSITORY   TAG       SIZE\n');
  });

  it('refuses a template that does not parse or run as a usage mistake', () => {
    expect(() => formatRows('{{.Tag', listing)).toThrow(UsageError);
    expect(() => formatRows('{{.Tag.Deep}}', listing)).toThrow(/--format: template: can't evaluate field Deep in type string/);
  });

  it("takes typed rows' missing fields as mistakes, as docker's listings do, and a map's as no value", () => {
    const typed = { ...listing, type: 'image' };
    expect(() => formatRows('{{.Repo}}', typed)).toThrow(/--format: template: can't evaluate field Repo in type image/);
    expect(formatRows('{{.Repo}}', listing)).toBe('<no value>\n<no value>\n');
    expect(formatRows('{{json .}} {{len .}} {{range $k, $v := .}}{{$k}}{{end}}', typed)).toBe('{"Repository":"alpine","Size":"7.8MB","Tag":"3.19"} 3 RepositorySizeTag\n{"Repository":"example.com/a-longer-name","Size":"120MB","Tag":"latest"} 3 RepositorySizeTag\n');
    expect(listing.rows[0]).toEqual({ Repository: 'alpine', Tag: '3.19', Size: '7.8MB' }); // the caller's rows are not marked
  });

  it("makes what an image holds safe for a terminal, keeping the template's own tabs and newlines", () => {
    const data = terminalSafe({ Config: { Labels: { 'a\u001b[2J': 'b\u0007', ok: ['x\u009b1m'] } }, Size: 3 });
    expect(data).toEqual({ Config: { Labels: { 'a\\u001b[2J': 'b\\u0007', ok: ['x\\u009b1m'] } }, Size: 3 });
    expect(formatRows('{{range $k, $v := .Config.Labels}}{{$k}}\t{{$v}}\n{{end}}', { rows: [data as Record<string, unknown>], headers: {}, table: '' })).toBe('a\\u001b[2J\tb\\u0007\nok\t[x\\u009b1m]\n\n');
  });

  it('writes times as Go writes them in UTC, in whole seconds', () => {
    expect(goTime(new Date('2026-12-05T21:09:45.986Z'))).toBe('2026-12-05 21:09:45 +0000 UTC');
  });
});
