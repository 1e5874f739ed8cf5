;; A WebAssembly plugin that reads and writes files through WASI preview 1, as a libc
;; would: it looks for the preopened folder that holds the path (plugbay preopens each
;; granted folder under its own absolute path) and opens the rest of the path in it. A path
;; no preopen holds is refused the way wasi-libc refuses it ("Capabilities insufficient",
;; errno 76); an error of the sandbox is reported with its errno.
(module
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))

  ;; 0-255: strings; 256: WASI out-parameters; 1024: a preopen's name; 8192: the input;
  ;; 40960: the message or output being built; 50000: file contents.
  (memory (export "memory") 2)
  (data (i32.const 0) "cannot open ")
  (data (i32.const 16) ": Capabilities insufficient (errno 76)")
  (data (i32.const 64) ": errno ")
  (data (i32.const 80) "cannot create ")
  (data (i32.const 96) "written")

  (global $arg (mut i32) (i32.const 0))
  (global $arg_len (mut i32) (i32.const 0))
  (global $dir (mut i32) (i32.const 0))      ;; the preopen holding the path
  (global $rel (mut i32) (i32.const 0))      ;; the path within it
  (global $rel_len (mut i32) (i32.const 0))

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

  (func $output (param $ptr i32) (param $len i32)
    (call $output_set (call $block (local.get $ptr) (local.get $len))
                      (i64.extend_i32_u (local.get $len))))

  ;; The first string argument of {"args":["...",...],...}, read into $arg/$arg_len.
  (func $arg
    (local $n i32) (local $i i32) (local $p i32) (local $end i32)
    (local.set $n (i32.wrap_i64 (call $input_length)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store8 (i32.add (i32.const 8192) (local.get $i))
                  (call $input_load_u8 (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.set $end (i32.add (i32.const 8192) (local.get $n)))
    (local.set $p (i32.const 8192))
    (block $found (loop $next
      (br_if $found (i32.eq (i32.load8_u (local.get $p)) (i32.const 91)))  ;; [
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $p) (local.get $end)))))
    (global.set $arg (i32.add (local.get $p) (i32.const 2)))
    (local.set $p (global.get $arg))
    (block $done (loop $next
      (br_if $done (i32.eq (i32.load8_u (local.get $p)) (i32.const 34)))  ;; "
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $p) (local.get $end)))))
    (global.set $arg_len (i32.sub (local.get $p) (global.get $arg))))

  ;; Whether guest bytes [a, a+n) equal [b, b+n).
  (func $same (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $differ (loop $next
      (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
      (br_if $differ (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next)))
    (i32.const 0))

  ;; Find the preopen holding the argument's path: sets $dir, $rel, $rel_len; 0 if none.
  (func $locate (result i32)
    (local $fd i32) (local $len i32)
    (local.set $fd (i32.const 3))
    (block $none (loop $next
      (br_if $none (call $fd_prestat_get (local.get $fd) (i32.const 256)))  ;; no more preopens
      (local.set $len (i32.load (i32.const 260)))
      (drop (call $fd_prestat_dir_name (local.get $fd) (i32.const 1024) (local.get $len)))
      (if (i32.and
            (i32.gt_u (global.get $arg_len) (local.get $len))
            (i32.and
              (call $same (global.get $arg) (i32.const 1024) (local.get $len))
              (i32.eq (i32.load8_u (i32.add (global.get $arg) (local.get $len))) (i32.const 47))))
        (then
          (global.set $dir (local.get $fd))
          (global.set $rel (i32.add (global.get $arg) (i32.add (local.get $len) (i32.const 1))))
          (global.set $rel_len (i32.sub (global.get $arg_len) (i32.add (local.get $len) (i32.const 1))))
          (return (i32.const 1))))
      (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
      (br $next)))
    (i32.const 0))

  ;; Fail with "<what><path><why>" (what and why are guest strings); errno 0: insufficient.
  (func $fail (param $what i32) (param $what_len i32) (param $errno i32) (result i32)
    (local $p i32)
    (memory.copy (i32.const 40960) (local.get $what) (local.get $what_len))
    (local.set $p (i32.add (i32.const 40960) (local.get $what_len)))
    (memory.copy (local.get $p) (global.get $arg) (global.get $arg_len))
    (local.set $p (i32.add (local.get $p) (global.get $arg_len)))
    (if (i32.eqz (local.get $errno))
      (then
        (memory.copy (local.get $p) (i32.const 16) (i32.const 38))
        (local.set $p (i32.add (local.get $p) (i32.const 38))))
      (else
        (memory.copy (local.get $p) (i32.const 64) (i32.const 8))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 10))))
        (i32.store8 (i32.add (local.get $p) (i32.const 1))
                    (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
        (local.set $p (i32.add (local.get $p) (i32.const 2)))))
    (call $error_set (call $block (i32.const 40960) (i32.sub (local.get $p) (i32.const 40960))))
    (i32.const 1))

  ;; module files, method read: the file's text (up to 1000 bytes) as a JSON string
  (func (export "files_read") (result i32)
    (local $errno i32) (local $fd i32) (local $n i32)
    (call $arg)
    (if (i32.eqz (call $locate)) (then (return (call $fail (i32.const 0) (i32.const 12) (i32.const 0)))))
    ;; lookup: follow symbolic links (1); rights: fd_read (1 << 1)
    (local.set $errno (call $path_open (global.get $dir) (i32.const 1) (global.get $rel) (global.get $rel_len)
                                       (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 256)))
    (if (local.get $errno) (then (return (call $fail (i32.const 0) (i32.const 12) (local.get $errno)))))
    (local.set $fd (i32.load (i32.const 256)))
    (i32.store (i32.const 264) (i32.const 50001))  ;; one iovec: 1000 bytes at 50001
    (i32.store (i32.const 268) (i32.const 1000))
    (local.set $errno (call $fd_read (local.get $fd) (i32.const 264) (i32.const 1) (i32.const 272)))
    (drop (call $fd_close (local.get $fd)))
    (if (local.get $errno) (then (return (call $fail (i32.const 0) (i32.const 12) (local.get $errno)))))
    (local.set $n (i32.load (i32.const 272)))
    (i32.store8 (i32.const 50000) (i32.const 34))
    (i32.store8 (i32.add (i32.const 50001) (local.get $n)) (i32.const 34))
    (call $output (i32.const 50000) (i32.add (local.get $n) (i32.const 2)))
    (i32.const 0))

  ;; module files, method write: create (or truncate) the file and write "written" in it
  (func (export "files_write") (result i32)
    (local $errno i32) (local $fd i32)
    (call $arg)
    (if (i32.eqz (call $locate)) (then (return (call $fail (i32.const 80) (i32.const 14) (i32.const 0)))))
    ;; lookup: follow symbolic links (1); oflags: creat (1) | trunc (8); rights: fd_write (1 << 6)
    (local.set $errno (call $path_open (global.get $dir) (i32.const 1) (global.get $rel) (global.get $rel_len)
                                       (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 256)))
    (if (local.get $errno) (then (return (call $fail (i32.const 80) (i32.const 14) (local.get $errno)))))
    (local.set $fd (i32.load (i32.const 256)))
    (i32.store (i32.const 264) (i32.const 96))
    (i32.store (i32.const 268) (i32.const 7))
    (local.set $errno (call $fd_write (local.get $fd) (i32.const 264) (i32.const 1) (i32.const 272)))
    (drop (call $fd_close (local.get $fd)))
    (if (local.get $errno) (then (return (call $fail (i32.const 80) (i32.const 14) (local.get $errno)))))
    (i32.const 0))
)
