# The kernel files compiled for one instruction set (AVX2, AVX-512, ...) must define no weak
# function: the linker keeps one copy of each weak symbol from whichever object it meets first, so
# an inline function left out of line in an AVX-512 file could serve every caller, and a CPU
# without AVX-512 would die of SIGILL in code that never asked for it. Run by ctest as
#   cmake -DNM=<nm> -DOBJECTS=<a|b|...> -P isa_objects_check.cmake
if(NOT NM)
  message(FATAL_ERROR "no nm program (CMAKE_NM) was found at configure time: install binutils")
endif()
if(NOT OBJECTS)
  message(FATAL_ERROR "usage: cmake -DNM=<nm> -DOBJECTS=<object|object|...> -P ${CMAKE_SCRIPT_MODE_FILE}")
endif()
string(REPLACE "|" ";" objects "${OBJECTS}")
set(found "")
set(checked 0)
foreach(object IN LISTS objects)
  if(NOT EXISTS "${object}")
    message(FATAL_ERROR "no such object file: ${object}")
  endif()
  execute_process(COMMAND "${NM}" --defined-only -C "${object}" OUTPUT_VARIABLE out
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} ${object}: ${err}")
  endif()
  math(EXPR checked "${checked} + 1")
  string(REPLACE "\n" ";" lines "${out}")
  foreach(line IN LISTS lines)
    # "<address> W <name>": a weak function (V, a weak object such as a typeinfo, is data).
    if(line MATCHES "^[0-9a-fA-F]* W (.*)$")
      string(APPEND found "  ${object}: ${CMAKE_MATCH_1}\n")
    endif()
  endforeach()
endforeach()
if(NOT found STREQUAL "")
  message(FATAL_ERROR "weak functions in instruction-set kernel files (give them internal "
                      "linkage, e.g. an anonymous namespace):\n${found}")
endif()
message(STATUS "${checked} kernel object files, no weak functions")
