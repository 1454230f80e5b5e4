set output 'Timing5.svg
set terminal svg
set multiplot
set grid
set title "Clients duration"
set xlabel "audio cycles"
set ylabel "usec"
plot "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 10 title "pwtest/18" with lines, "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 18 title "pwtest-graph/22" with lines, "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 26 title "pw-player/24" with lines
unset multiplot
unset output
