/** One message for the user: the file, the line when known, the field, the problem. No stack trace. */
export class ConversionError extends Error {
  override name = "ConversionError";
}

/** The file is not an apk-conf at all (a Kubernetes resource, another YAML): skipped in a directory. */
export class NotAnApkConf extends ConversionError {
  override name = "NotAnApkConf";
}

export function located(
  file: string,
  line: number | undefined,
  field: string | undefined,
  problem: string,
  Kind: typeof ConversionError = ConversionError,
): ConversionError {
  const where = line === undefined ? file : `${file}:${line}`;
  return new Kind(field ? `${where}: ${field}: ${problem}` : `${where}: ${problem}`);
}
