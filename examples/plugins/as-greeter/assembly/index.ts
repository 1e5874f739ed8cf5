// acme.as_greeter: a plugbay plugin in AssemblyScript, run in the wasm sandbox.
//
// Each export below is one contribution (or one method of one) under the names of
// docs/wasm.md: module `as_greet` method `greet` is the export `as_greet_greet`, hook
// `before_task_run` the export `before_task_run`, command `as-greet` the export `as_greet`.
// Every export takes its input as a JSON document, {"args": [...], "kwargs": {...}},
// writes its return value as a JSON document, and returns 0 (or 1 after setting an error).

import { Config, Host, Memory } from "@extism/as-pdk";
import { error_set } from "@extism/as-pdk/lib/env";
import { Json, Kind, lastError, parse, quote } from "./json";

// ------------------------------------------------------------ plugbay's host functions

@external("extism:host/user", "plugbay_log")
declare function plugbay_log(level: u64, message: u64): void;

@external("extism:host/user", "plugbay_emit")
declare function plugbay_emit(name: u64, data: u64): void;

/** Logs on the plugin's logger in the host (`plugbay.acme.as_greeter`). */
function log(level: string, message: string): void {
  plugbay_log(Memory.allocateString(level).offset, Memory.allocateString(message).offset);
}

/** Sends an event to the host's listeners; `data` is a JSON document. */
function emit(name: string, data: Json): void {
  plugbay_emit(Memory.allocateString(name).offset, Memory.allocateString(data.stringify()).offset);
}

// ------------------------------------------------------------ input, output, errors

// Calls this instance has served: 1 on every call when the host gives each call a fresh
// instance (`instance = "call"`), counting up when the plugin keeps one (the default).
let served: i32 = 0;

/** The call's input; null after reporting an error when it is not the JSON expected. */
function input(): Json | null {
  served++;
  const doc = parse(Host.inputString());
  if (doc === null || doc.get("args") === null) {
    fail('the input is not {"args": [...], "kwargs": {...}}: ' + lastError);
    return null;
  }
  return doc;
}

/** Keyword argument `name`, or null. */
function keyword(doc: Json, name: string): Json | null {
  const kwargs = doc.get("kwargs");
  return kwargs === null ? null : kwargs.get(name);
}

/** Argument `position`, else keyword argument `name`, else null. */
function argument(doc: Json, position: i32, name: string): Json | null {
  const positional = doc.get("args")!.at(position);
  return positional !== null ? positional : keyword(doc, name);
}

/** Writes the call's return value, a JSON document. */
function output(value: Json): i32 {
  // UTF-8 bytes: the PDK's outputString counts UTF-16 units and cuts non-ASCII text short.
  Host.output(Uint8Array.wrap(String.UTF8.encode(value.stringify())));
  return 0;
}

/** Fails the call: plugbay raises PluginCallError with `message` as its reason. */
function fail(message: string): i32 {
  error_set(Memory.allocateString(message).offset);
  return 1;
}

/** AssemblyScript's abort (a failed assertion, an index out of range): log why, then trap.
 *
 * A trap, not an error: the call may have stopped halfway through changing the
 * plugin's state, and plugbay throws a trapped instance away (the next call gets a
 * fresh one). The trap's own message says only where it happened, so the abort's
 * message goes to the host's log first. */
function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  const where = (file !== null ? file : "?") + ":" + line.toString() + ":" + column.toString();
  log("error", "abort: " + (message !== null ? message : "") + " at " + where);
  unreachable();
}

/** The `greeting` of the plugin's validated config (plugbay hands it over as JSON). */
function greeting(): string {
  const text = Config.get("plugbay.config");
  if (text !== null) {
    const config = parse(text);
    if (config !== null) {
      const value = config.get("greeting");
      if (value !== null && value.isString()) return value.str;
    }
  }
  return "Hello";
}

// ------------------------------------------------------------ module as_greet

/** greet(name="world") → "Hello, NAME!" */
export function as_greet_greet(): i32 {
  const doc = input();
  if (doc === null) return 1;
  const name = argument(doc, 0, "name");
  return output(Json.ofString(greeting() + ", " + (name === null ? "world" : name.text()) + "!"));
}

/** count(text) → {"characters": …, "words": …, "vowels": …} */
export function as_greet_count(): i32 {
  const doc = input();
  if (doc === null) return 1;
  const arg = argument(doc, 0, "text");
  if (arg === null || !arg.isString()) return fail("count(text) needs a string argument `text`");
  const text = arg.str;
  let words = 0;
  let vowels = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const blank = c == 0x20 || c == 0x0a || c == 0x09 || c == 0x0d;
    if (!blank && !inWord) words++;
    inWord = !blank;
    const lower = c | 0x20; // ASCII letters to lower case
    if (lower == 0x61 || lower == 0x65 || lower == 0x69 || lower == 0x6f || lower == 0x75) vowels++;
  }
  const out = Json.object()
    .set("characters", Json.ofNumber(text.length))
    .set("words", Json.ofNumber(words))
    .set("vowels", Json.ofNumber(vowels));
  return output(out);
}

/** calls() → how many calls this instance has served, this one included. */
export function as_greet_calls(): i32 {
  if (input() === null) return 1;
  return output(Json.ofNumber(served));
}

/** fail(message) → an error: how a plugin reports one. */
export function as_greet_fail(): i32 {
  const doc = input();
  if (doc === null) return 1;
  const message = argument(doc, 0, "message");
  return fail(message === null ? "asked to fail" : message.text());
}

/** crash() → an index out of range: AssemblyScript aborts, and the instance traps. */
export function as_greet_crash(): i32 {
  if (input() === null) return 1;
  const empty = new Array<i32>(0);
  return empty[served]; // out of range: abort() above
}

// ------------------------------------------------------------ as_greet as an opsrun module
//
// The module contract of opsrun (examples/opsrun): validate(args), check(args) and
// apply(args), each given one object of task arguments. Greeting changes nothing, so
// check says what apply says and `changed` is always false.

/** The task arguments (the first positional argument), or null after reporting an error. */
function taskArgs(): Json | null {
  const doc = input();
  if (doc === null) return null;
  const args = doc.get("args")!.at(0);
  if (args === null || args.kind != Kind.Object) {
    fail("as_greet: expected one object of task arguments");
    return null;
  }
  for (let i = 0; i < args.keys.length; i++) {
    if (args.keys[i] != "name") {
      fail("as_greet: unknown argument '" + args.keys[i] + "'; it takes name");
      return null;
    }
  }
  const name = args.get("name");
  if (name !== null && !name.isString()) {
    fail("as_greet: name must be text");
    return null;
  }
  return args;
}

/** {"changed": false, "msg": greeting, "artifacts": {"greeting", "name"}} */
function greetResult(args: Json): i32 {
  const name = args.get("name");
  const who = name === null ? "world" : name.str;
  const greeting_ = greeting() + ", " + who + "!";
  const artifacts = Json.object()
    .set("greeting", Json.ofString(greeting_))
    .set("name", Json.ofString(who));
  return output(
    Json.object()
      .set("changed", Json.ofBool(false))
      .set("msg", Json.ofString(greeting_))
      .set("artifacts", artifacts),
  );
}

/** validate(args) → null, or an error naming the wrong argument. */
export function as_greet_validate(): i32 {
  if (taskArgs() === null) return 1;
  return output(Json.null());
}

/** check(args) → what apply would say (it changes nothing). */
export function as_greet_check(): i32 {
  const args = taskArgs();
  return args === null ? 1 : greetResult(args);
}

/** apply(args) → the greeting, unchanged. */
export function as_greet_apply(): i32 {
  const args = taskArgs();
  return args === null ? 1 : greetResult(args);
}

// ------------------------------------------------------------ hook and command

/** before_task_run(task=…, …) → a greeting for the task; logs it and sends an event. */
export function before_task_run(): i32 {
  const doc = input();
  if (doc === null) return 1;
  const task = keyword(doc, "task");
  const name = task === null ? "a task" : task.text();
  log("info", "task " + name + " is about to run");
  emit("task-seen", Json.object().set("task", task === null ? Json.null() : task));
  return output(Json.ofString(greeting() + " from WebAssembly, " + name + "!"));
}

/** as-greet [NAME]… → logs a greeting per name (default: world); exit code 0, 2 on an option. */
export function as_greet(): i32 {
  const doc = input();
  if (doc === null) return 1;
  const args = doc.get("args")!.at(0);
  if (args === null) return fail("as-greet expects its arguments as one list");
  const names = new Array<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args.at(i)!.text();
    if (arg.startsWith("-")) {
      log("error", "as-greet: unknown option " + arg + " (usage: as-greet [NAME]...)");
      return output(Json.ofNumber(2));
    }
    names.push(arg);
  }
  if (names.length == 0) names.push("world");
  for (let i = 0; i < names.length; i++) log("info", greeting() + ", " + names[i] + "!");
  return output(Json.ofNumber(0));
}

// ------------------------------------------------------------ lifecycle (optional exports)

/** Called once when the plugin loads: {"host": {...}, "plugin": {"id", "version"}}. */
export function plugbay_init(): i32 {
  let app = "a host";
  const doc = parse(Host.inputString());
  if (doc !== null) {
    const host = doc.get("host");
    const name = host !== null ? host.get("app") : null;
    if (name !== null) app = quote(name.text());
  }
  log("info", "initialized in " + app);
  return 0;
}

/** host.health(): "ok". */
export function plugbay_health(): i32 {
  return output(Json.ofString("ok"));
}
