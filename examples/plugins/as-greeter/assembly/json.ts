// A small JSON reader and writer: what a plugbay call's input and output need.
//
// AssemblyScript has no JSON in its standard library. This file keeps the example free
// of further dependencies; a bigger plugin may prefer a JSON package from npm.
// Parsing never aborts: a malformed document gives null and sets `lastError`.

export enum Kind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

/** One JSON value. Objects keep their keys in document order. */
export class Json {
  kind: Kind = Kind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = "";
  items: Array<Json> = [];
  keys: Array<string> = [];

  static null(): Json {
    return new Json();
  }

  static ofBool(value: bool): Json {
    const j = new Json();
    j.kind = Kind.Bool;
    j.bool = value;
    return j;
  }

  static ofNumber(value: f64): Json {
    const j = new Json();
    j.kind = Kind.Number;
    j.num = value;
    return j;
  }

  static ofString(value: string): Json {
    const j = new Json();
    j.kind = Kind.String;
    j.str = value;
    return j;
  }

  static array(): Json {
    const j = new Json();
    j.kind = Kind.Array;
    return j;
  }

  static object(): Json {
    const j = new Json();
    j.kind = Kind.Object;
    return j;
  }

  /** Appends to an array. */
  push(value: Json): Json {
    this.items.push(value);
    return this;
  }

  /** Sets a key of an object (added at the end, or replaced in place). */
  set(key: string, value: Json): Json {
    const i = this.keys.indexOf(key);
    if (i >= 0) {
      this.items[i] = value;
    } else {
      this.keys.push(key);
      this.items.push(value);
    }
    return this;
  }

  /** The value of `key` in an object, or null (also when this is not an object). */
  get(key: string): Json | null {
    if (this.kind != Kind.Object) return null;
    const i = this.keys.indexOf(key);
    return i < 0 ? null : this.items[i];
  }

  /** The item `index` of an array, or null. */
  at(index: i32): Json | null {
    if (this.kind != Kind.Array || index < 0 || index >= this.items.length) return null;
    return this.items[index];
  }

  get length(): i32 {
    return this.items.length;
  }

  isString(): bool {
    return this.kind == Kind.String;
  }

  /** This value as a string: a string's text, anything else as JSON. */
  text(): string {
    return this.kind == Kind.String ? this.str : this.stringify();
  }

  stringify(): string {
    switch (this.kind) {
      case Kind.Null:
        return "null";
      case Kind.Bool:
        return this.bool ? "true" : "false";
      case Kind.Number:
        return numberText(this.num);
      case Kind.String:
        return quote(this.str);
      case Kind.Array: {
        const parts = new Array<string>(this.items.length);
        for (let i = 0; i < this.items.length; i++) parts[i] = this.items[i].stringify();
        return "[" + parts.join(",") + "]";
      }
      default: {
        const parts = new Array<string>(this.keys.length);
        for (let i = 0; i < this.keys.length; i++) {
          parts[i] = quote(this.keys[i]) + ":" + this.items[i].stringify();
        }
        return "{" + parts.join(",") + "}";
      }
    }
  }
}

/** Why the last `parse` returned null. */
export let lastError = "";

/** Parses a JSON document; null (and `lastError`) when it is not one. */
export function parse(text: string): Json | null {
  const reader = new Reader(text);
  const value = reader.value();
  if (value === null) {
    lastError = reader.error;
    return null;
  }
  reader.space();
  if (reader.pos < text.length) {
    lastError = "unexpected text after the JSON value at " + reader.pos.toString();
    return null;
  }
  return value;
}

/** `value` as a JSON string literal. */
export function quote(value: string): string {
  // Runs of plain characters are copied whole: adding one character at a time would
  // copy the string so far each time (quadratic in its length).
  const parts = new Array<string>();
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    if (i > start) parts.push(value.substring(start, i));
    if (c == 0x22) parts.push('\\"');
    else if (c == 0x5c) parts.push("\\\\");
    else if (c == 0x0a) parts.push("\\n");
    else if (c == 0x0d) parts.push("\\r");
    else if (c == 0x09) parts.push("\\t");
    else parts.push("\\u" + c.toString(16).padStart(4, "0"));
    start = i + 1;
  }
  if (start == 0) return '"' + value + '"';
  if (start < value.length) parts.push(value.substring(start));
  return '"' + parts.join("") + '"';
}

function numberText(n: f64): string {
  if (!isFinite(n)) return "null"; // JSON has no NaN or Infinity
  if (n == Math.floor(n) && Math.abs(n) < 9007199254740992) return (<i64>n).toString();
  return n.toString();
}

class Reader {
  pos: i32 = 0;
  error: string = "";

  constructor(public text: string) {}

  fail(what: string): Json | null {
    if (this.error.length == 0) this.error = what + " at " + this.pos.toString();
    return null;
  }

  space(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  literal(word: string): bool {
    if (this.text.substr(this.pos, word.length) != word) return false;
    this.pos += word.length;
    return true;
  }

  value(): Json | null {
    this.space();
    if (this.pos >= this.text.length) return this.fail("a value was expected");
    const c = this.text.charCodeAt(this.pos);
    if (c == 0x7b) return this.object();
    if (c == 0x5b) return this.array();
    if (c == 0x22) {
      const s = this.string();
      return s === null ? null : Json.ofString(s);
    }
    if (this.literal("true")) return Json.ofBool(true);
    if (this.literal("false")) return Json.ofBool(false);
    if (this.literal("null")) return Json.null();
    return this.number();
  }

  number(): Json | null {
    const start = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      const numeric = (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e;
      if (!numeric && c != 0x65 && c != 0x45) break;
      this.pos++;
    }
    if (this.pos == start) return this.fail("unexpected character");
    const n = parseFloat(this.text.substring(start, this.pos));
    if (isNaN(n)) return this.fail("bad number");
    return Json.ofNumber(n);
  }

  string(): string | null {
    this.pos++; // the opening quote
    const parts = new Array<string>(); // joined once: see quote()
    let start = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c == 0x22) {
        const last = this.text.substring(start, this.pos);
        this.pos++;
        if (parts.length == 0) return last;
        parts.push(last);
        return parts.join("");
      }
      if (c != 0x5c) {
        this.pos++;
        continue;
      }
      parts.push(this.text.substring(start, this.pos));
      const e = this.text.charCodeAt(this.pos + 1);
      this.pos += 2;
      if (e == 0x6e) parts.push("\n");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x75) {
        const code = I32.parseInt(this.text.substr(this.pos, 4), 16);
        parts.push(String.fromCharCode(code)); // surrogate pairs arrive as two escapes
        this.pos += 4;
      } else parts.push(String.fromCharCode(e)); // \" \\ \/
      start = this.pos;
    }
    this.fail("unterminated string");
    return null;
  }

  array(): Json | null {
    this.pos++;
    const out = Json.array();
    this.space();
    if (this.literal("]")) return out;
    while (true) {
      const item = this.value();
      if (item === null) return null;
      out.push(item);
      this.space();
      if (this.literal(",")) continue;
      if (this.literal("]")) return out;
      return this.fail("',' or ']' was expected");
    }
  }

  object(): Json | null {
    this.pos++;
    const out = Json.object();
    this.space();
    if (this.literal("}")) return out;
    while (true) {
      this.space();
      if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x22) {
        return this.fail("a key was expected");
      }
      const key = this.string();
      if (key === null) return null;
      this.space();
      if (!this.literal(":")) return this.fail("':' was expected");
      const item = this.value();
      if (item === null) return null;
      out.set(key, item);
      this.space();
      if (this.literal(",")) continue;
      if (this.literal("}")) return out;
      return this.fail("',' or '}' was expected");
    }
  }
}
