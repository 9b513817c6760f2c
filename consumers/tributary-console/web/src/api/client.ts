// The API client, typed by `schema.ts`, which `npm run gen` generates from
// the committed OpenAPI document (docs/openapi.json): a call the API does
// not have, or a field it does not answer, fails the build.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Connection = Schemas["ConnectionBody"];
export type Run = Schemas["RunBody"];
export type Letter = Schemas["LetterBody"];
export type Subscription = Schemas["SubscriptionBody"];
export type Delivery = Schemas["DeliveryBody"];

const KEY = "tributary.apiKey";

/// The API key, kept in this browser tab's session only.
export const session = {
  key: (): string | null => sessionStorage.getItem(KEY),
  signIn: (key: string) => sessionStorage.setItem(KEY, key),
  signOut: () => sessionStorage.removeItem(KEY),
};

export const api = createClient<paths>({ baseUrl: window.location.origin });

api.use({
  onRequest({ request }) {
    const key = session.key();
    if (key) request.headers.set("Authorization", `Bearer ${key}`);
    return request;
  },
});

/// An API error answer, with its code and message.
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Answer<T> = { data?: T; error?: unknown; response: Response };

/// The answer's body, or an ApiFailure carrying the API's message.
export async function call<T>(answer: Promise<Answer<T>>): Promise<T> {
  let result: Answer<T>;
  try {
    result = await answer;
  } catch (e) {
    throw new ApiFailure(0, "network", `the API did not answer: ${String(e)}`);
  }
  const { data, error, response } = result;
  if (!response.ok) {
    const body = error as { error?: { code?: string; message?: string } } | undefined;
    throw new ApiFailure(
      response.status,
      body?.error?.code ?? "http",
      body?.error?.message ?? `${response.status} ${response.statusText}`,
    );
  }
  return data as T;
}
