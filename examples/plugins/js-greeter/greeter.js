#!/usr/bin/env node
// acme.js_greeter: a plugbay plugin written in JavaScript, for Node.js.
//
// It implements the whole plugbay protocol (docs/protocol.md, version 1) with Node's
// standard library only: JSON-RPC 2.0, one message per line on stdin and stdout; stderr
// is its log. Calls run concurrently (each request is a promise), so a slow call never
// blocks the others and `$/cancel` can stop it.
'use strict';

const readline = require('readline');

const PLUGIN = { id: 'acme.js_greeter', version: '0.1.0' };
const SPOKEN = [1]; // the protocol versions this file implements

const ERR = {
  PARSE: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  CANCELLED: -32800,
  NO_CONTRIBUTION: -32001,
  PLUGIN: -32002,
  NOT_INITIALIZED: -32003,
};
const LEVELS = ['debug', 'info', 'warning', 'error'];

const env = process.env;

function die(message) {
  process.stderr.write(`greeter.js: ${message}\n`);
  process.exit(1);
}

// A program started without the cookie was not started by a host: say so and stop.
if (!env.PLUGBAY_COOKIE) {
  die(
    'not started by a plugbay host (PLUGBAY_COOKIE is not set); ' +
      'to try it, run: plugbay protocol-check node greeter.js',
  );
}

// Version negotiation: the highest version both sides speak. With none in common we still
// name our own, so that the host's error names both versions.
const offered = (env.PLUGBAY_PROTOCOL_VERSIONS || '')
  .split(',')
  .map((v) => Number.parseInt(v.trim(), 10))
  .filter(Number.isInteger);
const common = SPOKEN.filter((v) => offered.includes(v));
const protocol = Math.max(...(common.length ? common : SPOKEN));

const minLevel = Math.max(0, LEVELS.indexOf(env.PLUGBAY_LOG_LEVEL || 'info'));

// ---- output: stdout carries protocol messages only, one whole line per write ----

function send(message) {
  // JSON.stringify escapes newlines inside strings, so this is always one line.
  process.stdout.write(JSON.stringify(message) + '\n');
}

function answer(id, result) {
  send({ jsonrpc: '2.0', id, result: result === undefined ? null : result });
}

function answerError(id, code, message, data) {
  const error = { code, message };
  if (data !== undefined) error.data = data;
  send({ jsonrpc: '2.0', id, error });
}

function log(level, message, fields) {
  if (LEVELS.indexOf(level) < minLevel) return;
  send({ jsonrpc: '2.0', method: 'log', params: { level, message, fields: fields || {} } });
}

function event(name, data) {
  send({ jsonrpc: '2.0', method: 'event', params: { name, data: data || {} } });
}

// An error with a protocol code; anything else a contribution throws becomes -32002.
class CallError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// ---- the contributions ----

let initialized = false;
let config = {};

function greeting() {
  return typeof config.greeting === 'string' ? config.greeting : 'Hello';
}

// The argument at `index`, or the keyword `key`, or `fallback`.
function arg(args, kwargs, index, key, fallback) {
  if (Object.prototype.hasOwnProperty.call(kwargs, key)) return kwargs[key];
  return args.length > index ? args[index] : fallback;
}

function text(value, what) {
  if (typeof value !== 'string') throw new CallError(ERR.INVALID_PARAMS, `${what} must be text`);
  return value;
}

const modules = {
  js_greet: {
    greet(call, args, kwargs) {
      const name = text(arg(args, kwargs, 0, 'name', 'world'), 'greet(name): name');
      event('greeted', { name });
      return `${greeting()}, ${name}!`;
    },
    describe() {
      return {
        plugin: PLUGIN.id,
        language: 'JavaScript',
        runtime: `Node.js ${process.version}`,
        pid: process.pid,
        protocol,
        methods: Object.keys(modules.js_greet),
      };
    },
    // Sleeps `ms` milliseconds (default 5000) unless cancelled first: overlapping calls
    // and `$/cancel` can be seen with it.
    slow(call, args, kwargs) {
      const ms = arg(args, kwargs, 0, 'ms', 5000);
      if (!Number.isFinite(ms) || ms < 0) {
        throw new CallError(ERR.INVALID_PARAMS, 'slow(ms): ms must be a number >= 0');
      }
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(`slept ${ms} ms`), ms);
        call.onCancel(() => clearTimeout(timer));
      });
    },
    fail(call, args, kwargs) {
      throw new Error(text(arg(args, kwargs, 0, 'message', 'asked to fail'), 'fail(message)'));
    },
    // The module contract of opsrun (examples/opsrun): validate, check and apply, each given
    // one object of task arguments. Greeting changes nothing: check says what apply says.
    validate(call, args) {
      taskArgs(args);
      return null;
    },
    check(call, args) {
      return greetResult(taskArgs(args));
    },
    apply(call, args) {
      return greetResult(taskArgs(args));
    },
  },
};

function taskArgs(args) {
  const task = args[0];
  if (task === null || typeof task !== 'object' || Array.isArray(task)) {
    throw new CallError(ERR.INVALID_PARAMS, 'js_greet: expected one object of task arguments');
  }
  const unknown = Object.keys(task).filter((key) => key !== 'name');
  if (unknown.length) {
    throw new CallError(ERR.INVALID_PARAMS, `js_greet: unknown argument '${unknown[0]}'; it takes name`);
  }
  return { name: text(task.name === undefined ? 'world' : task.name, 'js_greet: name') };
}

function greetResult(task) {
  const message = `${greeting()}, ${task.name}!`;
  return {
    changed: false,
    msg: message,
    artifacts: { greeting: message, runtime: `Node.js ${process.version}`, pid: process.pid },
  };
}

const hooks = {
  before_task_run(call, kwargs) {
    const task = kwargs.task === undefined ? '(no task)' : String(kwargs.task);
    log('debug', 'before_task_run', { task });
    return `${greeting()} from JavaScript, before ${task}`;
  },
};

const commands = {
  'js-greet'(call, argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      log('info', 'usage: js-greet [NAME]...  greets each NAME (default: world)');
      return 0;
    }
    const bad = argv.find((a) => a.startsWith('-'));
    if (bad !== undefined) {
      log('error', `js-greet: unknown option ${bad}`);
      return 2;
    }
    for (const name of argv.length ? argv : ['world']) log('info', `${greeting()}, ${name}!`);
    return 0;
  },
};

function invoke(call, params) {
  if (!initialized) throw new CallError(ERR.NOT_INITIALIZED, 'invoke before initialize');
  const { contribution, method = null, args = [], kwargs = {} } = params || {};
  if (
    typeof contribution !== 'string' ||
    !Array.isArray(args) ||
    kwargs === null ||
    typeof kwargs !== 'object' ||
    Array.isArray(kwargs)
  ) {
    throw new CallError(ERR.INVALID_PARAMS, 'invoke needs contribution, args and kwargs');
  }
  const colon = contribution.indexOf(':');
  const kind = contribution.slice(0, colon);
  const name = contribution.slice(colon + 1);
  const own = (table, key) => Object.prototype.hasOwnProperty.call(table, key);
  if (kind === 'module' && own(modules, name)) {
    if (typeof method !== 'string' || !own(modules[name], method)) {
      throw new CallError(ERR.NO_CONTRIBUTION, `module:${name} has no method ${method}`);
    }
    return modules[name][method](call, args, kwargs);
  }
  if (kind === 'hook' && own(hooks, name)) return hooks[name](call, kwargs);
  if (kind === 'command' && own(commands, name)) {
    const argv = args.length ? args[0] : [];
    if (!Array.isArray(argv)) throw new CallError(ERR.INVALID_PARAMS, 'a command takes [argv]');
    return commands[name](call, argv.map(String));
  }
  throw new CallError(ERR.NO_CONTRIBUTION, `no contribution ${contribution}`);
}

// ---- requests and notifications from the host ----

const inflight = new Map(); // request id -> call, until it is answered

function exit(code) {
  for (const call of inflight.values()) call.cancel();
  // The callback runs once the line is handed to the OS, so nothing is lost on exit.
  process.stdout.write('', () => process.exit(code));
}

const methods = {
  initialize(call, params) {
    config = (params && params.config) || {};
    initialized = true;
    log('debug', 'initialized', { host: (params && params.host && params.host.app) || null });
    return {};
  },
  invoke,
  health() {
    const others = inflight.size - 1; // this health request is in flight too
    return { status: 'ok', detail: `${others} other call${others === 1 ? '' : 's'} in flight` };
  },
  shutdown(call) {
    // Answer first, then exit on our own (the host waits a grace period, then kills).
    setImmediate(() => exit(0));
    return {};
  },
};

function handleRequest(msg) {
  const { id, method } = msg;
  if (!Object.prototype.hasOwnProperty.call(methods, method)) {
    answerError(id, ERR.METHOD_NOT_FOUND, `unknown method ${method}`);
    return;
  }
  const handlers = [];
  const call = {
    id,
    onCancel: (fn) => handlers.push(fn),
    cancel: () => handlers.splice(0).forEach((fn) => fn()),
  };
  inflight.set(id, call);
  Promise.resolve()
    .then(() => methods[method](call, msg.params))
    .then(
      (result) => {
        if (inflight.delete(id)) answer(id, result);
      },
      (err) => {
        if (!inflight.delete(id)) return; // already answered as cancelled
        if (err instanceof CallError) answerError(id, err.code, err.message);
        else {
          const type = (err && err.name) || 'Error';
          const message = err && err.message !== undefined ? err.message : String(err);
          answerError(id, ERR.PLUGIN, `${type}: ${message}`, {
            type,
            traceback: (err && err.stack) || String(err),
          });
        }
      },
    );
}

function handleNotification(msg) {
  if (msg.method === '$/cancel') {
    const id = msg.params && msg.params.id;
    const call = inflight.get(id);
    if (call === undefined) return; // unknown or already answered: nothing to do
    inflight.delete(id);
    call.cancel();
    answerError(id, ERR.CANCELLED, 'cancelled');
  }
  // Unknown notifications are ignored.
}

function onLine(line) {
  if (!line.trim()) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    answerError(null, ERR.PARSE, `parse error: ${e.message}`);
    return;
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.method !== 'string') {
    const id = msg && Number.isInteger(msg.id) ? msg.id : null;
    answerError(id, ERR.INVALID_REQUEST, 'not a JSON-RPC request or notification');
    return;
  }
  if (!Object.prototype.hasOwnProperty.call(msg, 'id')) handleNotification(msg);
  else if (!Number.isInteger(msg.id)) answerError(null, ERR.INVALID_REQUEST, 'id must be an integer');
  else handleRequest(msg);
}

// ---- parent-death watch: never outlive the host ----

const parentPid = Number.parseInt(env.PLUGBAY_PARENT_PID || '', 10);
const startPpid = process.ppid;
if (Number.isInteger(parentPid) && parentPid > 0) {
  setInterval(() => {
    let alive = process.ppid === startPpid; // reparented: our parent is gone
    if (alive) {
      try {
        process.kill(parentPid, 0);
      } catch (e) {
        alive = e.code !== 'ESRCH';
      }
    }
    if (!alive) {
      process.stderr.write('greeter.js: the host is gone; exiting\n');
      exit(0);
    }
  }, 500).unref();
}

// ---- start: the ready line first, then requests until shutdown or end of stdin ----

send({
  jsonrpc: '2.0',
  method: 'plugbay/ready',
  params: {
    protocol,
    cookie: env.PLUGBAY_COOKIE,
    plugin: PLUGIN,
    contributions: {
      // "check" marks calls that are safe with no arguments and "check-slow" one that
      // runs long unless cancelled: `plugbay protocol-check` uses them.
      module: [
        {
          name: 'js_greet',
          methods: Object.keys(modules.js_greet),
          check: ['greet', 'describe'],
          'check-slow': 'slow',
        },
      ],
      hook: [{ name: 'before_task_run', check: true }],
      command: [{ name: 'js-greet', check: true }],
    },
  },
});

const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
input.on('line', onLine);
input.on('close', () => exit(0)); // end of stdin means: shut down now
