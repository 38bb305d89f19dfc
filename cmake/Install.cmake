# Install layout (DESIGN.md "Files on a host"); packaging/ consumes this tree.
# Distribution-specific directories are cache variables that the package recipes set
# (packaging/deb/debian/rules, packaging/rpm/jitgate.spec); the defaults suit `--prefix /usr`.
set(JITGATE_PAMDIR "${CMAKE_INSTALL_LIBDIR}/security" CACHE PATH
  "Where PAM modules go (Debian: /lib/<multiarch>/security; RHEL: /usr/lib64/security)")
set(JITGATE_SYSTEMDUNITDIR "lib/systemd/system" CACHE PATH
  "Where the systemd unit goes (Debian 12: /lib/systemd/system; RHEL: /usr/lib/systemd/system)")
set(JITGATE_TMPFILESDIR "lib/tmpfiles.d" CACHE PATH "Where the tmpfiles.d entry goes")

# The plugins are loaded into setuid sudo and into sshd/login: root-owned (the packages run
# as root) and never group- or world-writable. sudo itself refuses a writable plugin.
set(jitgate_module_mode OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

install(TARGETS jitgated RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS jitgatectl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS sudo_jitgate LIBRARY DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/jitgate
  PERMISSIONS ${jitgate_module_mode})
install(TARGETS pam_jitgate LIBRARY DESTINATION ${JITGATE_PAMDIR}
  PERMISSIONS ${jitgate_module_mode})
install(FILES config/jitgate.yaml DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/jitgate
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES config/jitgated.service DESTINATION ${JITGATE_SYSTEMDUNITDIR})
install(FILES config/jitgate.tmpfiles.conf DESTINATION ${JITGATE_TMPFILESDIR} RENAME jitgate.conf)
install(FILES README.md config/sudo.conf.example DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Man pages: whichever of man/*.5 and man/*.8 exist (jitgated.8, jitgatectl.8, jitgate.yaml.5,
# sudo_jitgate.8, pam_jitgate.8), in their sections.
foreach(section 5 8)
  file(GLOB jitgate_man_pages CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/man/*.${section})
  list(FILTER jitgate_man_pages EXCLUDE REGEX "/jitgate-server\\.")
  if(jitgate_man_pages)
    install(FILES ${jitgate_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endif()
endforeach()

# jitgate-server, the central approval service (docs/server.md): its program, unit, example
# config and man page, in the install component "server" (a package of its own).
if(JITGATE_BUILD_SERVER)
  install(TARGETS jitgate-server RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR} COMPONENT server)
  install(FILES config/jitgate-server.service DESTINATION ${JITGATE_SYSTEMDUNITDIR} COMPONENT server)
  install(FILES config/jitgate-server.yaml DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/jitgate-server RENAME server.yaml
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT server)
  install(FILES man/jitgate-server.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT server)
endif()
