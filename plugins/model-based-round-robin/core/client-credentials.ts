/**
 * The client's own credentials, which must not reach a provider beside the key an entry sends for it: a client's
 * key for the gateway (or for another provider) would be handed to a third party. They are removed only when the
 * chosen entry sends a key of its own (auth_header_name); without one, the client's key is the one the provider
 * needs and passes. docs/security.md lists them with the reason for each.
 */

/** Request headers the common providers, gateways and Kong itself read a client's key from (lower case). */
const DEFAULT_CLIENT_CREDENTIAL_HEADERS = [
  // OpenAI and most OpenAI-compatible APIs (Bearer), Azure OpenAI with Entra ID, Mistral, Groq, Hugging Face...
  "authorization",
  // Azure OpenAI's key header.
  "api-key",
  // Azure API Management's subscription key, in front of Azure OpenAI.
  "ocp-apim-subscription-key",
  // Anthropic (its other anthropic-* headers name a version or a beta, not a credential); AWS API Gateway.
  "x-api-key",
  // Google Gemini API.
  "x-goog-api-key",
  // Kong's key-auth plugin reads `apikey` by default and passes it upstream unless hide_credentials is set.
  "apikey",
  // Meant for the proxy, never for the server behind it.
  "proxy-authorization",
  // Cookies belong to the gateway's origin; the provider is another origin, and no API key travels in them.
  "cookie",
] as const;

/** The headers removed for a configuration: the default list and clear_client_headers, lower case, once each. */
export function credentialHeaders(extra: readonly string[] = []): string[] {
  return [...new Set([...DEFAULT_CLIENT_CREDENTIAL_HEADERS, ...extra.map((name) => name.toLowerCase())])];
}

/** Which of `names` the request carries (header names as Kong hands them over: lower case). */
export function credentialsIn(names: readonly string[], headers: Record<string, unknown>): string[] {
  return names.filter((name) => headers[name] !== undefined);
}
