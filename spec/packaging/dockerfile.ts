/** A small Dockerfile reader for the packaging tests: instructions with line continuations, ENV in both forms. */
export interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

export function readDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trim().startsWith("#"))) continue;
    if (pending !== "" && line.trim().startsWith("#")) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = "";
    const space = full.indexOf(" ");
    const keyword = (space === -1 ? full : full.slice(0, space)).toUpperCase();
    if (keyword === "FROM") stage++;
    out.push({ keyword, args: space === -1 ? "" : full.slice(space + 1).trim(), stage });
  }
  return out;
}

/** ENV a=b c="d e" and ENV a b, as Docker reads them. */
export function envOf(instructions: Instruction[], stage: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of instructions.filter((x) => x.keyword === "ENV" && x.stage === stage)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(i.args)) {
      const [key, ...rest] = i.args.split(/\s+/);
      env[key as string] = rest.join(" ");
      continue;
    }
    for (const m of i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("((?:[^"\\]|\\.)*)"|\S*)/g)) {
      env[m[1] as string] = m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : (m[2] as string);
    }
  }
  return env;
}

/** What the COPY instructions take from the build context (not `--from` another stage): their source paths. */
export function contextSources(instructions: Instruction[]): string[] {
  return instructions
    .filter((i) => i.keyword === "COPY")
    .map((i) => i.args.split(/\s+/))
    .filter((words) => !words.some((w) => w.startsWith("--from=")))
    .flatMap((words) => words.filter((w) => !w.startsWith("--")).slice(0, -1))
    .map((source) => source.replace(/^\.\//, "").replace(/\/$/, ""));
}
