// Pure Kotlin/JVM: no Android imports, so CI compiles and tests it with kotlinc 1.3 on a plain JVM.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}
