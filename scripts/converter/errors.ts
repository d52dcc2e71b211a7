/** One message for the user: the file, the line when known, the field, the problem. No stack trace. */
export class ConversionError extends Error {
  override name = "ConversionError";
}

export function located(
  file: string,
  line: number | undefined,
  field: string | undefined,
  problem: string,
): ConversionError {
  const where = line === undefined ? file : `${file}:${line}`;
  return new ConversionError(field ? `${where}: ${field}: ${problem}` : `${where}: ${problem}`);
}
