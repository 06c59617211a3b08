# What `cmake --install` lays out (honours DESTDIR and CMAKE_INSTALL_PREFIX).
install(TARGETS mpcpush RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET mpcpush-fcm-emulator)
  install(TARGETS mpcpush-fcm-emulator RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
