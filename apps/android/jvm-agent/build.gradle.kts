// The JVM agent (CI's stand-in for the phone) and the JVM test mains. Pure Kotlin/JVM, like protocol-core.
plugins {
    id("org.jetbrains.kotlin.jvm")
    application
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":protocol-core"))
    implementation(project(":frontend"))
}

application {
    mainClass.set("dev.ondevice.jvmagent.JvmAgentMain")
}

val repo = rootDir.resolve("../..")

// The same checks tests/test_apps_kotlin.py runs, for people working in Android Studio.
tasks.register<JavaExec>("protocolVectors") {
    classpath = sourceSets["test"].runtimeClasspath
    mainClass.set("dev.ondevice.jvmtest.ProtocolVectorTest")
    args(repo.resolve("profiling/protocol_vectors").path)
}

tasks.register<JavaExec>("frontendVectors") {
    classpath = sourceSets["test"].runtimeClasspath
    mainClass.set("dev.ondevice.jvmtest.FrontendVectorTest")
    args(repo.resolve("tests/vectors/frontend").path)
}
