# Tests that are shell scripts (tests/scripts/): the install layout and the systemd units.
# Label "ops"; they need the mpcpush binary built and, for the systemd ones, systemd-analyze
# (skipped, exit code 77, only when it is missing). Each installs the build tree into its own
# temporary DESTDIR; they share a lock because `cmake --install` rewrites files in the build tree.
find_program(MP_BASH bash REQUIRED)

set(MP_SCRIPT_ARGS ${CMAKE_COMMAND} ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR} $<TARGET_FILE:mpcpush>)
if(TARGET mpcpush-fcm-emulator)
  list(APPEND MP_SCRIPT_ARGS $<TARGET_FILE:mpcpush-fcm-emulator>)
endif()

foreach(script install-layout systemd-verify systemd-security)
  string(REPLACE "-" "_" test_name "ops_${script}")
  add_test(NAME ${test_name}
           COMMAND ${MP_BASH} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/${script}.sh ${MP_SCRIPT_ARGS})
  set_tests_properties(${test_name} PROPERTIES LABELS ops TIMEOUT 120 SKIP_RETURN_CODE 77
                       RESOURCE_LOCK mpcpush_install_tree)
endforeach()
