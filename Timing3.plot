set output 'Timing3.svg
set terminal svg
set multiplot
set grid
set title "Clients end date"
set xlabel "audio cycles"
set ylabel "usec"
plot "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 1 title "Audio period" with lines, "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 8 title "pwtest/18" with lines, "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 16 title "pwtest-graph/22" with lines, "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 24 title "pw-player/24" with lines
unset multiplot
unset output
