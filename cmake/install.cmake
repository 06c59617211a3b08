# What `cmake --install` lays out (honours DESTDIR, and CMAKE_INSTALL_PREFIX whether set at
# configure time or with `cmake --install BUILD --prefix DIR`):
#
#   bin/mpcpush, bin/mpcpush-fcm-emulator
#   lib/systemd/system/mpcpush.service, mpcpush-receiver@.service,
#                      mpcpush-dispatcher@.service, mpcpush-migrate.service
#   <sysconfdir>/mpcpush/mpcpush.conf.example  (/etc/mpcpush when the prefix is /usr)
#   share/mpcpush/fireblocks-keys/*.pem         Fireblocks' published webhook keys
#   share/mpcpush/sql/*.sql                     the migrations (also built into the binary)
#   share/doc/mpcpush/README.md, SECURITY.md, LICENSE (those that exist)
#
# Components: `mpcpush` (everything but the emulator) and `emulator`.
#
# The systemd units and the example configuration name installed paths (the binary, the
# configuration directory, the data directory), so they are generated at install time from the
# templates in systemd/ and etc/, once the final prefix is known.

set(MPCPUSH_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd units go, relative to the prefix unless absolute")

install(TARGETS mpcpush RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT mpcpush)
if(TARGET mpcpush-fcm-emulator)
  install(TARGETS mpcpush-fcm-emulator RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
          COMPONENT emulator)
endif()

file(GLOB MP_INSTALL_FIREBLOCKS_KEYS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/keys/fireblocks/*.pem)
install(FILES ${MP_INSTALL_FIREBLOCKS_KEYS}
        DESTINATION ${CMAKE_INSTALL_DATADIR}/mpcpush/fireblocks-keys COMPONENT mpcpush)

file(GLOB MP_INSTALL_SQL CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/sql/*.sql)
install(FILES ${MP_INSTALL_SQL} DESTINATION ${CMAKE_INSTALL_DATADIR}/mpcpush/sql COMPONENT mpcpush)

install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/SECURITY.md
              ${CMAKE_SOURCE_DIR}/LICENSE
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT mpcpush OPTIONAL)

file(GLOB MP_INSTALL_UNIT_TEMPLATES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/systemd/*.service.in)

# Install-time code. The first part hands over what is known now; the second (a bracket
# argument, so nothing in it is expanded before install time) works out the final directories,
# fills in the templates under the build tree and installs the results.
install(CODE "
  set(MP_SOURCE_DIR [[${CMAKE_SOURCE_DIR}]])
  set(MP_STAGING_DIR [[${CMAKE_BINARY_DIR}/install-staging]])
  set(MP_UNIT_TEMPLATES [[${MP_INSTALL_UNIT_TEMPLATES}]])
  set(MP_REL_BINDIR [[${CMAKE_INSTALL_BINDIR}]])
  set(MP_REL_SYSCONFDIR [[${CMAKE_INSTALL_SYSCONFDIR}]])
  set(MP_REL_DATADIR [[${CMAKE_INSTALL_DATADIR}]])
  set(MP_REL_DOCDIR [[${CMAKE_INSTALL_DOCDIR}]])
  set(MP_REL_UNITDIR [[${MPCPUSH_SYSTEMD_UNITDIR}]])
" COMPONENT mpcpush)
install(CODE [==[
  # The absolute form of a directory given relative to the prefix, as GNUInstallDirs computes it
  # (sysconfdir is /etc for the prefixes / and /usr, /etc/opt/X for /opt/X).
  function(mp_full_dir out dir kind)
    string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
    if(IS_ABSOLUTE "${dir}")
      set(full "${dir}")
    elseif(kind STREQUAL "sysconf" AND prefix MATCHES "^(/usr)?$")
      set(full "/${dir}")
    elseif(kind STREQUAL "sysconf" AND prefix MATCHES "^/opt/")
      set(full "/${dir}${prefix}")
    else()
      set(full "${prefix}/${dir}")
    endif()
    set(${out} "${full}" PARENT_SCOPE)
  endfunction()

  mp_full_dir(MPCPUSH_BINDIR "${MP_REL_BINDIR}" "")
  mp_full_dir(MPCPUSH_SYSCONFDIR "${MP_REL_SYSCONFDIR}" "sysconf")
  set(MPCPUSH_CONFDIR "${MPCPUSH_SYSCONFDIR}/mpcpush")
  mp_full_dir(MPCPUSH_DATADIR "${MP_REL_DATADIR}" "")
  set(MPCPUSH_DATADIR "${MPCPUSH_DATADIR}/mpcpush")
  mp_full_dir(MPCPUSH_DOCDIR "${MP_REL_DOCDIR}" "")
  mp_full_dir(MPCPUSH_UNITDIR "${MP_REL_UNITDIR}" "")

  file(READ "${MP_SOURCE_DIR}/systemd/sandbox.conf" MPCPUSH_UNIT_SANDBOX)
  string(REGEX REPLACE "\n+$" "" MPCPUSH_UNIT_SANDBOX "${MPCPUSH_UNIT_SANDBOX}")

  # One staging directory per destination, so that installs to different places cannot mix.
  string(MD5 destination_hash "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
  set(staging "${MP_STAGING_DIR}/${destination_hash}")
  file(REMOVE_RECURSE "${staging}")

  set(units "")
  foreach(template IN LISTS MP_UNIT_TEMPLATES)
    get_filename_component(name "${template}" NAME)
    string(REGEX REPLACE "\\.in$" "" name "${name}")
    configure_file("${template}" "${staging}/units/${name}" @ONLY)
    list(APPEND units "${staging}/units/${name}")
  endforeach()
  file(INSTALL DESTINATION "${MPCPUSH_UNITDIR}" TYPE FILE FILES ${units}
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

  configure_file("${MP_SOURCE_DIR}/etc/mpcpush.conf.example.in"
                 "${staging}/etc/mpcpush.conf.example" @ONLY)
  file(INSTALL DESTINATION "${MPCPUSH_CONFDIR}" TYPE FILE
       FILES "${staging}/etc/mpcpush.conf.example"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  file(REMOVE_RECURSE "${staging}")
]==] COMPONENT mpcpush)
