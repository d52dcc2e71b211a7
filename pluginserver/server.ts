/**
 * kong-pdk 0.6.0's plugin server, with every event freed once Kong is done with it.
 *
 * How kong-pdk runs an event (server.js, lib/pipe.js): HandleEvent creates a pipe pair, stores the server's
 * end in `events` under a new event id and starts the phase handler. Each PDK call the handler makes queues
 * `{Method, Args}` and awaits one answer; when the handler returns, it queues "ret". HandleEvent and every
 * Step take the next queued message and return it to Kong; Step first hands Kong's result to the waiting call.
 * Only a Step that reads "ret" deletes the entry. Kong, though, stops stepping an event in three cases, and
 * kong-pdk then keeps the entry (and the handler's closure, and whatever it holds) forever:
 *
 *  1. The message was `kong.response.exit` or `kong.response.error`. Kong produces the response and never
 *     steps that event again; the JS side does not await these calls, so the handler goes on, queues "ret"
 *     (or more calls) into a pipe nobody reads. Every refusal the plugin answers itself leaked one entry.
 *  2. Kong could not run the call: the PDK raised a Lua error (bad argument, wrong phase, a raw body that
 *     does not fit the buffer). Kong answers nothing; the handler awaits forever.
 *  3. HandleEvent's very first message is "ret" (a handler that made no PDK call): kong-pdk returns it from
 *     HandleEvent, which never deletes.
 *
 * This subclass follows each message on its way to Kong (the reply of HandleEvent and Step) and:
 *  - "ret": deletes the entry (case 3; for Step, kong-pdk already did);
 *  - exit/error: deletes the entry at once and drains the pipe: later calls of that handler are rejected
 *    straight away (Kong would never answer them) until it queues "ret";
 *  - any other call: arms a timer, disarmed by the next Step for that event. If Kong has not answered within
 *    `callTimeoutMs` (default 65 s, longer than the 60 s Kong waits on the socket itself, so an answer that can
 *    still come is never cut off), the call is rejected with a clear error, the entry deleted and the pipe
 *    drained as above. The handler's promise thus settles and nothing about the event stays behind.
 *
 * A Step for an event freed this way gets kong-pdk's own "event id N not found" error, which Kong logs.
 */
// First: kong-pdk registers ts-node when its server module loads (see ./typescript-plugins).
import "./typescript-plugins";

import Server = require("kong-pdk/server");

import { DEFAULT_CALL_TIMEOUT_MS } from "./timeouts";

/** PDK calls Kong never answers: the event ends with the response they produce (pdk.js NON_RETURN_METHODS). */
const ENDING_METHODS = new Set(["kong.response.exit", "kong.response.error"]);
const RET = "ret";

function methodOf(message: unknown): string | undefined {
  if (message === null || typeof message !== "object") return undefined;
  const method = (message as { Method?: unknown }).Method;
  return typeof method === "string" ? method : undefined;
}

export interface EventStatus {
  /** Entries in kong-pdk's `events` map: events Kong may still step. */
  events: number;
  /** Of those, events whose PDK call Kong has not answered yet (a timer is armed). */
  awaitingKong: number;
  instances: number;
  /** Events freed because they ended with kong.response.exit/error. */
  endedByExit: number;
  /** PDK calls rejected because Kong did not answer within the bound. */
  abandonedCalls: number;
}

export class EventReleasingServer extends Server {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private endedByExit = 0;
  private abandonedCalls = 0;

  constructor(
    pluginDir: string | undefined,
    logger: Server.PluginServerLogger,
    readonly callTimeoutMs: number = DEFAULT_CALL_TIMEOUT_MS,
  ) {
    super(pluginDir, logger);
  }

  /**
   * kong-pdk's plugin info, plus the module's `EntityChecks` (if it exports any) as the schema's top-level
   * `entity_checks`: kong-pdk has no place for checks across fields, and Kong enforces them from here with a
   * 400 at configuration time (placed inside `Schema` they would stop Kong from starting).
   */
  override async GetPluginInfo(name: string): Promise<unknown> {
    const info = (await super.GetPluginInfo(name)) as { Schema: Record<string, unknown> };
    const module = (this.getPlugins().get(name) as { mod?: { EntityChecks?: unknown } } | undefined)?.mod;
    if (Array.isArray(module?.EntityChecks)) info.Schema.entity_checks = module.EntityChecks;
    return info;
  }

  override async HandleEvent(event: { InstanceId: number; EventName: string }): Promise<Server.StepReply> {
    return this.follow(await super.HandleEvent(event));
  }

  /** Every Step variant (Step, StepMultiMap, StepConsumer, ...) and StepError go through here. */
  override async step(
    data: { EventId: number; Data?: unknown },
    isError: boolean,
  ): Promise<Server.StepReply> {
    this.disarm(data.EventId); // Kong answered the call this event waited on
    return this.follow(await super.step(data, isError));
  }

  status(): EventStatus {
    return {
      events: this.events.size,
      awaitingKong: this.timers.size,
      instances: this.instances.size,
      endedByExit: this.endedByExit,
      abandonedCalls: this.abandonedCalls,
    };
  }

  /** Looks at the message going back to Kong and decides whether Kong will step this event again. */
  private follow(reply: Server.StepReply): Server.StepReply {
    const eventId = reply.EventId;
    if (reply.Data === RET) {
      this.events.delete(eventId);
      return reply;
    }
    const method = methodOf(reply.Data) ?? String(reply.Data);
    if (ENDING_METHODS.has(method)) {
      this.endedByExit++;
      this.forget(eventId);
    } else {
      const timer = setTimeout(() => this.abandon(eventId, method), this.callTimeoutMs);
      timer.unref();
      this.timers.set(eventId, timer);
    }
    return reply;
  }

  private disarm(eventId: number): void {
    const timer = this.timers.get(eventId);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(eventId);
  }

  private abandon(eventId: number, method: string): void {
    this.timers.delete(eventId);
    const pipe = this.events.get(eventId);
    if (pipe === undefined) return;
    this.abandonedCalls++;
    const reason = `Kong did not answer ${method} within ${this.callTimeoutMs} ms (event #${eventId} abandoned)`;
    this.logger.warn(reason);
    // What a StepError would do: the handler's awaited call rejects with a PDKError carrying this reason.
    pipe.put([undefined, reason]);
    this.forget(eventId);
  }

  /** Removes the event and answers, with an error, whatever the handler still asks until it returns. */
  private forget(eventId: number): void {
    this.disarm(eventId);
    const pipe = this.events.get(eventId);
    if (pipe === undefined) return;
    this.events.delete(eventId);
    void this.drain(pipe, eventId);
  }

  private async drain(pipe: Server.EventPipe, eventId: number): Promise<void> {
    for (;;) {
      const message = await pipe.get();
      if (message === RET) return;
      const method = methodOf(message) ?? String(message);
      if (ENDING_METHODS.has(method)) continue; // not awaited by the handler
      this.logger.debug(`event #${eventId} has ended: ${method} is not sent to Kong`);
      pipe.put([undefined, `event #${eventId} has ended; Kong will not run ${method}`]);
    }
  }
}
