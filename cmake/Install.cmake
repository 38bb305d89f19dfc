# Install layout (DESIGN.md "Files on a host"); packaging consumes this tree.
install(TARGETS jitgated RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS jitgatectl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS sudo_jitgate LIBRARY DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/jitgate
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES config/jitgate.yaml DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/jitgate
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES config/jitgated.service DESTINATION lib/systemd/system)
install(FILES config/jitgate.tmpfiles.conf DESTINATION lib/tmpfiles.d RENAME jitgate.conf)
install(FILES config/sudo.conf.example DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The distribution's PAM module directory (Debian: /lib/x86_64-linux-gnu/security; RHEL: /usr/lib64/security).
set(JITGATE_PAMDIR "${CMAKE_INSTALL_LIBDIR}/security" CACHE PATH "Where PAM modules go")
install(TARGETS pam_jitgate LIBRARY DESTINATION ${JITGATE_PAMDIR}
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
