;; A WebAssembly plugin written by hand against plugbay's contract (docs/wasm.md), for the
;; tests of the wasm runtime. Each export is an Extism plugin function: no parameters, an
;; i32 result (0: success), input and output through the Extism kernel (extism:host/env).
;; plugbay compiles this text when the plugin loads (entry = "plugin.wat").
(module
  ;; ---- the Extism kernel
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "http_request" (func $http_request (param i64 i64) (result i64)))
  ;; ---- plugbay's host functions: every argument and result is an Extism block offset
  (import "extism:host/user" "plugbay_log" (func $plugbay_log (param i64 i64)))
  (import "extism:host/user" "plugbay_emit" (func $plugbay_emit (param i64 i64)))
  (import "extism:host/user" "plugbay_config" (func $plugbay_config (result i64)))
  (import "extism:host/user" "plugbay_call" (func $plugbay_call (param i64 i64) (result i64)))

  ;; 0-1023: the strings below; 8192: the input; 40960: scratch for building text.
  (memory (export "memory") 2)
  (data (i32.const 0) "info")
  (data (i32.const 16) "task seen")
  (data (i32.const 32) "seen")
  (data (i32.const 48) "{\"n\":1}")
  (data (i32.const 64) "plugbay.config")
  (data (i32.const 80) "boom: something failed")
  (data (i32.const 112) "module:clock")
  (data (i32.const 128) "{\"method\":\"now\",\"args\":[],\"kwargs\":{}}")
  (data (i32.const 176) "module:blocker")
  (data (i32.const 192) "{\"method\":\"wait\",\"args\":[],\"kwargs\":{}}")
  (data (i32.const 240) "{\"url\":\"")
  (data (i32.const 256) "\",\"method\":\"GET\"}")
  (data (i32.const 288) "{\"status\":\"degraded\",\"message\":\"tired\"}")
  (data (i32.const 336) "not json")
  (data (i32.const 352) "initialised")

  ;; The plugin's state: what instance = "plugin" keeps between calls and a reset forgets.
  (global $counter (mut i32) (i32.const 0))
  ;; Where $arg found the first string argument of the call.
  (global $arg (mut i32) (i32.const 0))
  (global $arg_len (mut i32) (i32.const 0))

  ;; ---- helpers

  ;; A new Extism block holding guest bytes [ptr, ptr+len); its offset.
  (func $block (param $ptr i32) (param $len i32) (result i64)
    (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $off))

  ;; Copy the Extism block at $off to guest memory at $dst; its length.
  (func $unblock (param $off i64) (param $dst i32) (result i32)
    (local $n i32) (local $i i32)
    (local.set $n (i32.wrap_i64 (call $length (local.get $off))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
                  (call $load_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n))

  ;; The call's output: guest bytes, or an Extism block as it is.
  (func $output (param $ptr i32) (param $len i32)
    (call $output_set (call $block (local.get $ptr) (local.get $len))
                      (i64.extend_i32_u (local.get $len))))
  (func $output_block (param $off i64)
    (call $output_set (local.get $off) (call $length (local.get $off))))

  ;; Copy the call's input to guest memory at 8192; its length.
  (func $input (result i32)
    (local $n i64) (local $i i64)
    (local.set $n (call $input_length))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (i32.add (i32.const 8192) (i32.wrap_i64 (local.get $i)))
                  (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (i32.wrap_i64 (local.get $n)))

  ;; Find the first string argument in {"args":["...",...],...} (no escapes in it).
  (func $arg
    (local $p i32) (local $end i32)
    (local.set $end (i32.add (i32.const 8192) (call $input)))
    (local.set $p (i32.const 8192))
    (block $found (loop $next  ;; to the "[" that opens args
      (br_if $found (i32.eq (i32.load8_u (local.get $p)) (i32.const 91)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $p) (local.get $end)))))
    (global.set $arg (i32.add (local.get $p) (i32.const 2)))  ;; past ["
    (local.set $p (global.get $arg))
    (block $done (loop $next  ;; to the closing quote
      (br_if $done (i32.eq (i32.load8_u (local.get $p)) (i32.const 34)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $p) (local.get $end)))))
    (global.set $arg_len (i32.sub (local.get $p) (global.get $arg))))

  ;; Write $v in decimal at $dst; the number of digits.
  (func $itoa (param $v i32) (param $dst i32) (result i32)
    (local $n i32) (local $t i32) (local $i i32)
    (local.set $n (i32.const 1))
    (local.set $t (local.get $v))
    (block $done (loop $next
      (br_if $done (i32.lt_u (local.get $t) (i32.const 10)))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $next)))
    (local.set $i (local.get $n))
    (local.set $t (local.get $v))
    (loop $next
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $t) (i32.const 10))))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $next (local.get $i)))
    (local.get $n))

  ;; ---- contributions

  ;; module greet, method run: returns its own input, {"args": [...], "kwargs": {...}}
  (func (export "greet_run") (result i32)
    (call $output (i32.const 8192) (call $input))
    (i32.const 0))

  ;; module counter, method next: 1, 2, 3… for as long as the instance lives
  (func (export "counter_next") (result i32)
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (call $output (i32.const 40960) (call $itoa (global.get $counter) (i32.const 40960)))
    (i32.const 0))

  ;; hook on_task: logs "task seen" and emits the event "seen" {"n": 1}; returns null
  (func (export "on_task") (result i32)
    (call $plugbay_log (call $block (i32.const 0) (i32.const 4))
                       (call $block (i32.const 16) (i32.const 9)))
    (call $plugbay_emit (call $block (i32.const 32) (i32.const 4))
                        (call $block (i32.const 48) (i32.const 7)))
    (i32.const 0))

  ;; command greet-all: exit code 3
  (func (export "greet_all") (result i32)
    (i32.store8 (i32.const 40960) (i32.const 51))  ;; "3"
    (call $output (i32.const 40960) (i32.const 1))
    (i32.const 0))

  ;; module config, method read: the config from the host function plugbay_config
  (func (export "config_read") (result i32)
    (call $output_block (call $plugbay_config))
    (i32.const 0))

  ;; module config, method key: the config from the Extism config key plugbay.config
  (func (export "config_key") (result i32)
    (call $output_block (call $config_get (call $block (i32.const 64) (i32.const 14))))
    (i32.const 0))

  ;; module faults: the ways a plugin fails
  (func (export "faults_fail") (result i32)  ;; a plugin's own error
    (call $error_set (call $block (i32.const 80) (i32.const 22)))
    (i32.const 1))
  (func (export "faults_trap") (result i32)  ;; a trap
    (unreachable))
  (func (export "faults_spin") (result i32)  ;; an infinite loop
    (loop $forever (br $forever))
    (i32.const 0))
  (func (export "faults_bomb") (result i32)  ;; grow memory until refused
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (unreachable))
  (func (export "faults_garbage") (result i32)  ;; output that is not JSON
    (call $output (i32.const 336) (i32.const 8))
    (i32.const 0))

  ;; module relay: plugbay_call to module clock (method now) and module blocker (wait);
  ;; the output is plugbay_call's answer, {"result": …} or {"error": …}
  (func (export "relay_clock") (result i32)
    (call $output_block (call $plugbay_call (call $block (i32.const 112) (i32.const 12))
                                            (call $block (i32.const 128) (i32.const 38))))
    (i32.const 0))
  (func (export "relay_blocker") (result i32)
    (call $output_block (call $plugbay_call (call $block (i32.const 176) (i32.const 14))
                                            (call $block (i32.const 192) (i32.const 39))))
    (i32.const 0))

  ;; module web, method get: GET the URL given as first argument; the body as a JSON string
  (func (export "web_get") (result i32)
    (local $p i32) (local $response i64)
    (call $arg)
    (memory.copy (i32.const 40960) (i32.const 240) (i32.const 8))
    (memory.copy (i32.const 40968) (global.get $arg) (global.get $arg_len))
    (local.set $p (i32.add (i32.const 40968) (global.get $arg_len)))
    (memory.copy (local.get $p) (i32.const 256) (i32.const 17))
    (local.set $p (i32.add (local.get $p) (i32.const 17)))
    (local.set $response
      (call $http_request (call $block (i32.const 40960) (i32.sub (local.get $p) (i32.const 40960)))
                          (i64.const 0)))
    (i32.store8 (i32.const 50000) (i32.const 34))
    (local.set $p (i32.add (i32.const 50001) (call $unblock (local.get $response) (i32.const 50001))))
    (i32.store8 (local.get $p) (i32.const 34))
    (call $output (i32.const 50000) (i32.sub (i32.add (local.get $p) (i32.const 1)) (i32.const 50000)))
    (i32.const 0))

  ;; ---- lifecycle
  (func (export "plugbay_init") (result i32)
    (call $plugbay_log (call $block (i32.const 0) (i32.const 4))
                       (call $block (i32.const 352) (i32.const 11)))
    (i32.const 0))
  (func (export "plugbay_health") (result i32)
    (call $output (i32.const 288) (i32.const 39))
    (i32.const 0))
)
