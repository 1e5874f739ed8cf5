;; A module that imports a host function plugbay does not provide: it cannot be
;; instantiated, and the plugin fails to load saying which import is missing.
(module
  (import "env" "fetch_weather" (func $fetch_weather (result i32)))
  (func (export "tool") (result i32) (call $fetch_weather)))
