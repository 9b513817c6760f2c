// The fields of the answers the document gives as plain objects
// (connections, runs, dead letters, webhook subscriptions and deliveries):
// the README's tables list them. Everything else comes typed from schema.ts.

export interface Connection {
  id: string;
  company_id: string;
  source: string;
  /// `linked`, `pending_auth`, `deauthorized`, `unlinked`.
  status: string;
  status_reason: string | null;
  created_at: string;
  updated_at: string;
}

export interface RunState {
  state: string;
  at: string;
}

export interface Run {
  id: string;
  company_id: string;
  connection_id: string;
  data_type: string;
  trigger: string;
  record_id: string | null;
  /// `queued`, `fetching`, `publishing`, `succeeded`, `failed`, `paused`.
  status: string;
  states: RunState[];
  worker: string | null;
  pages_fetched: number;
  records_fetched: number;
  records_published: number;
  records_dead_lettered: number;
  records_deleted: number;
  error: string | null;
  error_fault: string | null;
  resumed_from: string | null;
  repeats: number;
}

export interface Letter {
  id: string;
  replayed: boolean;
  unreadable?: string;
  stage?: string;
  reason?: string;
  company_id?: string | null;
  data_type?: string | null;
  replays?: number;
  payload_bytes?: number;
  origin?: Record<string, unknown>;
}

export interface Subscription {
  id: string;
  url: string;
  event_types: string[];
  company_id: string | null;
  description: string;
  created_at: string;
  removed_at: string | null;
}

export interface Attempt {
  attempt: number;
  at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
}

export interface Delivery {
  id: string;
  message_id: string;
  subscription_id: string;
  event_type: string;
  company_id: string | null;
  /// `pending`, `delivered`, `failed`, `cancelled`.
  status: string;
  attempts: number;
  created_at: string;
  next_attempt_at: string | null;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  finished_at: string | null;
  replay_of: string | null;
  payload: unknown;
  attempt_log?: Attempt[];
}
